//! A job's chunks in sequence order from a given sequence, read with bounded memory: pages of
//! the audit store while `TW_OUTPUT` no longer holds the job's start, then the stream itself
//! (each sequence once). Used by a viewer further back than its feed's window and by the log
//! download; what it holds at once is one store page or [`READ_BATCH`] (a viewer:
//! [`CATCH_UP_BATCH`]) chunks.

use super::FeedSource;
use async_nats::jetstream::consumer;
use bytes::Bytes;
use futures::StreamExt;
use std::collections::VecDeque;
use std::time::Duration;
use taskwire_core::wire::OutputStream;
use taskwire_core::wire::output::WireChunk;
use uuid::Uuid;

/// Chunks one stream read of a download asks the server for at once: its memory bound is
/// this many chunks of at most `MAX_CHUNK` bytes.
pub const READ_BATCH: i64 = 8;
/// The same for a viewer catching up with its feed's window: a hundred viewers behind it
/// hold a hundred of these, so it is smaller.
pub const CATCH_UP_BATCH: i64 = 2;
/// How long to wait for a chunk the stream is known to hold before reading the stream again
/// from a new consumer (skipping what was given), and how many times, before the read counts
/// as cut (a chunk that expired meanwhile never comes). An ordered consumer with a small
/// batch can stall until its pull request expires (30 s): async-nats counts messages that
/// arrive before it has noted its own pull request as still to come, and so does not ask for
/// more; a new consumer starts with a clean count.
const STALL_WAIT: Duration = Duration::from_secs(8);
const STALL_LIMIT: u32 = 5;
/// How many times one read opens the stream again after it failed, and the pause before the
/// first time (the next ones wait longer).
const REOPEN_LIMIT: u32 = 3;
const REOPEN_PAUSE: Duration = Duration::from_millis(200);

/// One chunk read.
#[derive(Debug, Clone)]
pub struct Piece {
    pub seq: u64,
    pub stream: OutputStream,
    pub data: Bytes,
}

/// The chunk a `TW_OUTPUT` message holds, its bytes as the process wrote them (decompressed).
/// A message that is no chunk is skipped; a chunk whose payload cannot be read keeps its place
/// in the sequence as a system line that says why, so a viewer never waits for it.
pub fn piece_of(
    job_id: &Uuid,
    headers: Option<&async_nats::HeaderMap>,
    payload: Bytes,
) -> Option<Piece> {
    let c = match WireChunk::from_message(headers, payload) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e, "not an output chunk: skipped");
            return None;
        }
    };
    Some(match c.data() {
        Ok(data) => Piece {
            seq: c.seq,
            stream: c.stream,
            data,
        },
        Err(e) => {
            tracing::warn!(job = %job_id, seq = c.seq, error = %e, "output chunk cannot be read");
            Piece {
                seq: c.seq,
                stream: OutputStream::System,
                data: Bytes::from(format!(
                    "[taskwire] chunk {} of this log cannot be read: {e}\n",
                    c.seq
                )),
            }
        }
    })
}

/// How far a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// What the stream holds when the reader opens, then the end (a download).
    Held,
    /// Chunks the caller knows exist (a viewer catching up with its feed's window); one that
    /// does not come within a few seconds is an error.
    Known,
}

pub struct ChunkReader {
    src: FeedSource,
    job_id: Uuid,
    /// Only the instance that claimed the job publishes its output (`None`: any).
    instance: Option<Uuid>,
    until: Until,
    /// The next page of the store to read; `None` once the store is done (or not needed).
    store_from: Option<u64>,
    page: VecDeque<Piece>,
    live: Option<consumer::pull::Ordered>,
    opened: bool,
    /// Messages left to read (`Until::Held`).
    held: u64,
    /// How many times the stream was opened again after a failed read.
    reopened: u32,
    /// How many times it was opened again after a chunk it holds did not come.
    stalled: u32,
    /// The next sequence to give: anything below it was given already (or not asked for).
    next: u64,
}

impl ChunkReader {
    /// A reader from chunk `from` of job `job_id`.
    pub async fn open(
        src: FeedSource,
        job_id: Uuid,
        instance: Option<Uuid>,
        from: u64,
        until: Until,
    ) -> Result<Self, String> {
        let store_from = (!src.holds_start(&job_id).await?).then_some(from.max(1));
        Ok(Self {
            src,
            job_id,
            instance,
            until,
            store_from,
            page: VecDeque::new(),
            live: None,
            opened: false,
            held: 0,
            reopened: 0,
            stalled: 0,
            next: from.max(1),
        })
    }

    /// The next chunk in order; `None` at the end (`Until::Held`). A chunk missing between
    /// two others shows as a jump in `seq`.
    pub async fn next(&mut self) -> Result<Option<Piece>, String> {
        loop {
            if let Some(p) = self.page.pop_front() {
                if let Some(p) = self.take(p) {
                    return Ok(Some(p));
                }
                continue;
            }
            if let Some(from) = self.store_from {
                match self
                    .src
                    .store
                    .stored_page(self.job_id, from)
                    .await
                    .map_err(|e| e.message)?
                {
                    None => self.store_from = None,
                    Some(page) => {
                        self.store_from = page.next_seq.filter(|n| *n > from);
                        self.page.extend(page.chunks.into_iter().map(|c| Piece {
                            seq: c.seq,
                            stream: c.stream,
                            data: Bytes::from(c.data),
                        }));
                    }
                }
                continue;
            }
            if !self.opened
                && let Err(e) = self.open_stream().await
            {
                if self.reopened < REOPEN_LIMIT {
                    self.reopened += 1;
                    tracing::debug!(job = %self.job_id, error = %e, "cannot open the output stream; trying again");
                    self.opened = false;
                    tokio::time::sleep(REOPEN_PAUSE * self.reopened).await;
                    continue;
                }
                return Err(e);
            }
            if self.until == Until::Held && self.held == 0 {
                return Ok(None);
            }
            let Some(live) = self.live.as_mut() else {
                return Ok(None);
            };
            // Messages counted as held may expire meanwhile, or the server may stall: either
            // way the read is cut short, not ended as if whole.
            let m = match tokio::time::timeout(STALL_WAIT, live.next()).await {
                Ok(Some(Ok(m))) => m.message,
                Ok(Some(Err(e))) => {
                    // The read failed (its node lost, the server overloaded): read the stream
                    // again from its start, a few times, skipping what was given already.
                    if self.reopened < REOPEN_LIMIT {
                        self.reopened += 1;
                        tracing::debug!(job = %self.job_id, error = %e, "output read failed; reading the stream again");
                        self.live = None;
                        self.opened = false;
                        tokio::time::sleep(REOPEN_PAUSE * self.reopened).await;
                        continue;
                    }
                    return Err(e.to_string());
                }
                Ok(None) => return Err("the output stream ended early".into()),
                Err(_) => {
                    if self.stalled < STALL_LIMIT {
                        self.stalled += 1;
                        tracing::warn!(job = %self.job_id, next = self.next, "a chunk the stream holds did not come; reading the stream again");
                        self.live = None;
                        self.opened = false;
                        continue;
                    }
                    return Err(format!(
                        "chunk {} did not arrive from the stream within {:?}, {} times",
                        self.next,
                        STALL_WAIT,
                        STALL_LIMIT + 1
                    ));
                }
            };
            self.held = self.held.saturating_sub(1);
            let Some(piece) = piece_of(&self.job_id, m.headers.as_ref(), m.payload) else {
                continue;
            };
            if let Some(p) = self.take(piece) {
                return Ok(Some(p));
            }
        }
    }

    /// `p` unless it was given already (a republished chunk, or one the store gave).
    fn take(&mut self, p: Piece) -> Option<Piece> {
        if p.seq < self.next {
            return None;
        }
        self.next = p.seq + 1;
        Some(p)
    }

    async fn open_stream(&mut self) -> Result<(), String> {
        self.opened = true;
        let ns = &self.src.ns;
        let c = self
            .src
            .topology
            .output_stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: match self.instance {
                    Some(guid) => ns.output(&guid, &self.job_id),
                    None => ns.output_any(&self.job_id),
                },
                max_batch: match self.until {
                    Until::Held => READ_BATCH,
                    Until::Known => CATCH_UP_BATCH,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut c = c;
        if self.until == Until::Held {
            self.held = c.info().await.map_err(|e| e.to_string())?.num_pending;
            if self.held == 0 {
                return Ok(());
            }
        }
        self.live = Some(c.messages().await.map_err(|e| e.to_string())?);
        Ok(())
    }
}
