//! A job's output pipeline: stdout and stderr are read concurrently and published as chunks on
//! `tw.out.<job>` with a gapless sequence number, through JetStream with a bounded window of
//! unacknowledged publishes.
//!
//! Bytes are never dropped or reordered: a chunk whose ack fails is republished under the same
//! message id (JetStream de-duplicates), and when the window is full the pipes are not read, so
//! the process waits on its own writes rather than the executor buffering without bound. The
//! first bytes after a quiet period go out at once; bursts are coalesced into chunks of up to
//! 64 KiB at most once per `coalesce` period. Past the command's output cap the process keeps
//! running and its output is counted but not stored, and one system line says so. A chunk
//! LZ4 saves an eighth of is published compressed (`Tw-Encoding: lz4`) unless the executor's
//! `output_compression` is `off`.

use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::Duration;
use taskwire_core::names::{HDR_ENCODING, HDR_MSG_ID, HDR_SEQ, HDR_STREAM};
use taskwire_core::retry::Backoff;
use taskwire_core::wire::OutputStream;
use taskwire_core::wire::output::{ChunkEncoding, MAX_CHUNK, chunk_msg_id, encode_chunk};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

/// Settings of one job's pipeline.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    pub subject: String,
    pub job_id: Uuid,
    /// The instance publishing it (part of each chunk's de-duplication id).
    pub instance: Uuid,
    /// Bytes of process output stored at most.
    pub cap: u64,
    pub coalesce: Duration,
    pub window: usize,
    /// Publish compressible chunks as LZ4 blocks.
    pub compress: bool,
}

/// What the pipeline did, for the job's `exited` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputSummary {
    /// Sequence number of the last chunk published (0 when there was none).
    pub last_seq: u64,
    /// Bytes the process wrote, stored or not.
    pub process_bytes: u64,
    /// True when the cap cut the stored output short.
    pub truncated: bool,
}

/// Writes taskwire's own lines into the job's log (stream `system`).
#[derive(Debug, Clone)]
pub struct SystemLines(mpsc::Sender<(OutputStream, Bytes)>);

impl SystemLines {
    /// Appends a line (a newline is added). Waits if the pipeline is full.
    pub async fn line(&self, text: &str) {
        let mut b = BytesMut::with_capacity(text.len() + 1);
        b.extend_from_slice(text.as_bytes());
        b.extend_from_slice(b"\n");
        let _ = self.0.send((OutputStream::System, b.freeze())).await;
    }
}

/// A running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pub system: SystemLines,
    /// Set when the job's main process has ended: from then on a pipe that stays silent for
    /// the drain bound is taken to be held open by an escaped process.
    closing: tokio::sync::watch::Sender<Option<Duration>>,
    readers: Vec<JoinHandle<bool>>,
    publisher: JoinHandle<OutputSummary>,
}

impl Pipeline {
    /// Starts reading both pipes and publishing.
    pub fn start(
        js: jetstream::Context,
        cfg: OutputConfig,
        stdout: pipe::Receiver,
        stderr: pipe::Receiver,
    ) -> Self {
        let (tx, rx) = mpsc::channel(8);
        let (closing, watch) = tokio::sync::watch::channel(None);
        let readers = vec![
            tokio::spawn(read_pipe(
                stdout,
                OutputStream::Stdout,
                tx.clone(),
                watch.clone(),
            )),
            tokio::spawn(read_pipe(stderr, OutputStream::Stderr, tx.clone(), watch)),
        ];
        let publisher = tokio::spawn(publish_loop(js, cfg, rx));
        Self {
            system: SystemLines(tx),
            closing,
            readers,
            publisher,
        }
    }

    /// Reads both pipes to their end, then waits for every chunk to be acknowledged. Whatever
    /// the process wrote is always read, however long NATS takes to take it; only a pipe that
    /// stays silent for `bound` without closing (held open by a process that escaped the tree)
    /// is given up on.
    pub async fn finish(self, bound: Duration) -> (OutputSummary, bool) {
        let Pipeline {
            system,
            closing,
            readers,
            publisher,
        } = self;
        closing.send_replace(Some(bound));
        let mut closed = true;
        for r in readers {
            closed &= r.await.unwrap_or(false);
        }
        if !closed {
            system
                .line("[taskwire] output pipes were still held open after the job ended; stopped reading them")
                .await;
        }
        drop(system);
        (publisher.await.unwrap_or_default(), closed)
    }
}

/// Reads one pipe to its end. Returns false when it gave up on a pipe held open (silent for
/// the drain bound after the main process ended).
async fn read_pipe(
    mut pipe: pipe::Receiver,
    stream: OutputStream,
    tx: mpsc::Sender<(OutputStream, Bytes)>,
    mut closing: tokio::sync::watch::Receiver<Option<Duration>>,
) -> bool {
    loop {
        let mut buf = BytesMut::with_capacity(MAX_CHUNK);
        let bound = *closing.borrow_and_update();
        // `read_buf` is cancel safe: a read abandoned here has taken no data.
        let read = match bound {
            Some(b) => match tokio::time::timeout(b, pipe.read_buf(&mut buf)).await {
                Ok(r) => r,
                Err(_) => return false,
            },
            None => tokio::select! {
                r = pipe.read_buf(&mut buf) => r,
                changed = closing.changed() => {
                    if changed.is_err() {
                        return true;
                    }
                    continue;
                }
            },
        };
        match read {
            Ok(0) => return true,
            Ok(_) => {
                // Take what else the pipe holds now, up to a chunk: one hand-over per chunk
                // rather than per write of the process.
                while buf.len() < MAX_CHUNK {
                    match pipe.try_read_buf(&mut buf) {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
                // Not bounded: when NATS is slow the pipe simply is not read meanwhile.
                if tx.send((stream, buf.freeze())).await.is_err() {
                    return true;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, stream = stream.as_str(), "reading job output failed");
                return true;
            }
        }
    }
}

/// One chunk as published: kept until acknowledged, to be published again the same way.
struct Outgoing {
    seq: u64,
    stream: OutputStream,
    encoding: ChunkEncoding,
    payload: Bytes,
}

struct Publisher {
    js: jetstream::Context,
    cfg: OutputConfig,
    seq: u64,
    window: VecDeque<(Outgoing, PublishAckFuture)>,
    stored: u64,
    summary: OutputSummary,
}

async fn publish_loop(
    js: jetstream::Context,
    cfg: OutputConfig,
    mut rx: mpsc::Receiver<(OutputStream, Bytes)>,
) -> OutputSummary {
    let coalesce = cfg.coalesce;
    let mut p = Publisher {
        js,
        cfg,
        seq: 0,
        window: VecDeque::new(),
        stored: 0,
        summary: OutputSummary::default(),
    };
    let mut pending: Option<(OutputStream, BytesMut)> = None;
    let mut last_flush = Instant::now() - coalesce;
    let mut deadline: Option<Instant> = None;
    loop {
        let item = match deadline {
            Some(d) => tokio::select! {
                item = rx.recv() => item,
                _ = tokio::time::sleep_until(d) => {
                    if let Some((s, buf)) = pending.take() {
                        p.send(s, buf.freeze()).await;
                        last_flush = Instant::now();
                    }
                    deadline = None;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some((stream, data)) = item else { break };
        if stream == OutputStream::System {
            if let Some((s, buf)) = pending.take() {
                p.send(s, buf.freeze()).await;
            }
            deadline = None;
            p.send_split(stream, data).await;
            continue;
        }
        let (data, announce) = p.apply_cap(data);
        if pending.is_none() && data.len() == MAX_CHUNK {
            // A whole chunk with nothing before it goes out as read, without a copy.
            p.send(stream, data).await;
            last_flush = Instant::now();
            deadline = None;
        } else if !data.is_empty() {
            if let Some((s, _)) = &pending
                && *s != stream
                && let Some((s, buf)) = pending.take()
            {
                p.send(s, buf.freeze()).await;
            }
            let buf = &mut pending
                .get_or_insert_with(|| (stream, BytesMut::with_capacity(MAX_CHUNK)))
                .1;
            buf.extend_from_slice(&data);
            while buf.len() >= MAX_CHUNK {
                let chunk = buf.split_to(MAX_CHUNK).freeze();
                p.send(stream, chunk).await;
                last_flush = Instant::now();
            }
            if buf.is_empty() {
                pending = None;
                deadline = None;
            } else if last_flush.elapsed() >= coalesce {
                if let Some((s, buf)) = pending.take() {
                    p.send(s, buf.freeze()).await;
                }
                last_flush = Instant::now();
                deadline = None;
            } else if deadline.is_none() {
                deadline = Some(last_flush + coalesce);
            }
        }
        if announce {
            if let Some((s, buf)) = pending.take() {
                p.send(s, buf.freeze()).await;
            }
            deadline = None;
            let notice = format!(
                "[taskwire] output cap of {} bytes reached: further output is counted but not stored\n",
                p.cfg.cap
            );
            p.send_split(OutputStream::System, Bytes::from(notice))
                .await;
        }
    }
    if let Some((s, buf)) = pending.take() {
        p.send(s, buf.freeze()).await;
    }
    while !p.window.is_empty() {
        p.settle_oldest().await;
    }
    p.summary.last_seq = p.seq;
    p.summary
}

impl Publisher {
    /// Counts process bytes and cuts them at the cap. Returns what may be stored and whether
    /// this is the moment the cap was first reached (to be announced after the kept part).
    fn apply_cap(&mut self, data: Bytes) -> (Bytes, bool) {
        self.summary.process_bytes += data.len() as u64;
        let room = self.cfg.cap.saturating_sub(self.stored);
        if (data.len() as u64) <= room {
            self.stored += data.len() as u64;
            return (data, false);
        }
        self.stored += room;
        let first = !self.summary.truncated;
        self.summary.truncated = true;
        (data.slice(..room as usize), first)
    }

    async fn send_split(&mut self, stream: OutputStream, data: Bytes) {
        let mut rest = data;
        while !rest.is_empty() {
            let n = rest.len().min(MAX_CHUNK);
            let chunk = rest.split_to(n);
            self.send(stream, chunk).await;
        }
    }

    async fn send(&mut self, stream: OutputStream, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.seq += 1;
        let (encoding, payload) = if self.cfg.compress {
            encode_chunk(&data)
        } else {
            (ChunkEncoding::Raw, data)
        };
        let out = Outgoing {
            seq: self.seq,
            stream,
            encoding,
            payload,
        };
        let ack = self.publish(&out).await;
        self.window.push_back((out, ack));
        if self.window.len() >= self.cfg.window {
            self.settle_oldest().await;
        }
    }

    async fn publish(&self, out: &Outgoing) -> PublishAckFuture {
        let seq = out.seq;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let mut h = async_nats::HeaderMap::new();
            h.insert(HDR_SEQ, seq.to_string().as_str());
            h.insert(HDR_STREAM, out.stream.as_str());
            if let Some(enc) = out.encoding.as_header() {
                h.insert(HDR_ENCODING, enc);
            }
            h.insert(
                HDR_MSG_ID,
                chunk_msg_id(&self.cfg.instance, &self.cfg.job_id, seq).as_str(),
            );
            match self
                .js
                .publish_with_headers(self.cfg.subject.clone(), h, out.payload.clone())
                .await
            {
                Ok(ack) => return ack,
                Err(e) => {
                    tracing::warn!(job = %self.cfg.job_id, seq, error = %e, "output publish failed; retrying");
                    backoff.wait().await;
                }
            }
        }
    }

    /// Waits for the oldest chunk's ack, republishing it (same message id) until stored.
    async fn settle_oldest(&mut self) {
        let Some((out, mut ack)) = self.window.pop_front() else {
            return;
        };
        let seq = out.seq;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match ack.await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(job = %self.cfg.job_id, seq, error = %e, "output chunk not acknowledged; republishing");
                    backoff.wait().await;
                    ack = self.publish(&out).await;
                }
            }
        }
    }
}
