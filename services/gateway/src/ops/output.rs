//! A job's log as stored so far, written as it is read: raw bytes, or NDJSON chunks that
//! keep stdout, stderr and system lines apart (bytes intact, base64); and the live feed of a
//! job's output for a viewer. Both only for callers who may read the job.

use super::jobs;
use crate::error::ApiError;
use crate::feed::{Feed, FeedSource};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Principal};
use async_nats::jetstream::consumer;
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use taskwire_core::names::{HDR_SEQ, HDR_STREAM};
use taskwire_core::wire::api::OutputFormat;
use taskwire_core::wire::{OutputStream, StoredChunk};
use uuid::Uuid;

/// The output feed of job `job_id` for a viewer that may read it (audited as `action`:
/// `jobs.stream`).
pub async fn feed(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    job_id: Uuid,
) -> Result<Arc<Feed>, ApiError> {
    let record = jobs::readable(gw, who, caller, Action::JobsStream, job_id).await?;
    Ok(gw.feeds.get(&record))
}

/// Job `job_id`'s log in `format`, optionally only one stream, for a caller who may read it
/// (audited as `jobs.output`). Where the log starts: the stream while it still holds chunk 1,
/// else the audit store (then the stream for what the store does not have yet). A long log
/// never sits whole in memory; a read that fails half-way ends the stream with an error, so a
/// client cannot take it for the whole log.
pub async fn download(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    job_id: Uuid,
    format: OutputFormat,
    only: Option<OutputStream>,
) -> Result<impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, ApiError> {
    let record = jobs::readable(gw, who, caller, Action::JobsOutput, job_id).await?;
    let src = gw.feeds.source().clone();
    let job_id = record.spec.job_id;
    let read = |e: &dyn std::fmt::Display| ApiError::internal("reading the output", e.to_string());
    let stream_has_start = src.holds_start(&job_id).await.map_err(|e| read(&e))?;
    let mut c = src
        .topology
        .output_stream
        .create_consumer(consumer::pull::OrderedConfig {
            // Only the instance that claimed the job publishes its output (a job never run
            // has none to read).
            filter_subject: match record.instance {
                Some(guid) => src.ns.output(&guid, &job_id),
                None => src.ns.output_any(&job_id),
            },
            ..Default::default()
        })
        .await
        .map_err(|e| read(&e))?;
    let held = c.info().await.map_err(|e| read(&e))?.num_pending;
    let live = if held > 0 {
        Some(c.messages().await.map_err(|e| read(&e))?)
    } else {
        None
    };
    let reader = Reader {
        src,
        job_id,
        store_from: (!stream_has_start).then_some(1),
        live,
        held,
        next: 1,
        only,
        ndjson: format == OutputFormat::Ndjson,
    };
    Ok(futures::stream::unfold(reader, Reader::step))
}

/// How long to wait for the next message the stream held when the request came.
const HELD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The log, read in sequence order: pages of the audit store first when the stream no longer
/// holds the start, then the chunks the stream holds (each sequence once).
struct Reader {
    src: FeedSource,
    job_id: uuid::Uuid,
    /// The next page of the store to read; `None` once the store is done (or not needed).
    store_from: Option<u64>,
    live: Option<consumer::pull::Ordered>,
    /// Messages the stream held when the request came; no more are read.
    held: u64,
    /// The next sequence to write: anything below it was written already.
    next: u64,
    only: Option<OutputStream>,
    ndjson: bool,
}

impl Reader {
    async fn step(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        loop {
            if let Some(from) = self.store_from {
                match self.src.store.stored_page(self.job_id, from).await {
                    Err(e) => return self.fail(e.message),
                    Ok(None) => self.store_from = None,
                    Ok(Some(page)) => {
                        self.store_from = page.next_seq.filter(|n| *n > from);
                        let mut out = Vec::new();
                        for c in page.chunks {
                            self.put(&mut out, c.seq, c.stream, &c.data);
                        }
                        if !out.is_empty() {
                            return Some((Ok(Bytes::from(out)), self));
                        }
                    }
                }
                continue;
            }
            if self.held == 0 {
                return None;
            }
            // Messages counted as held may expire meanwhile, or the server may stall: either
            // way the log is cut short, not ended as if whole.
            let next = tokio::time::timeout(HELD_WAIT, self.live.as_mut()?.next()).await;
            let m = match next {
                Ok(Some(Ok(m))) => m.message,
                Ok(Some(Err(e))) => return self.fail(e.to_string()),
                Ok(None) => return self.fail("the output stream ended early".into()),
                Err(_) => {
                    let why = format!(
                        "{} held chunks did not arrive within {HELD_WAIT:?}",
                        self.held
                    );
                    return self.fail(why);
                }
            };
            self.held -= 1;
            let Some(h) = m.headers.as_ref() else {
                continue;
            };
            let (Some(seq), Some(stream)) = (
                h.get(HDR_SEQ).and_then(|v| v.as_str().parse::<u64>().ok()),
                h.get(HDR_STREAM)
                    .and_then(|v| OutputStream::parse(v.as_str())),
            ) else {
                continue;
            };
            let mut out = Vec::new();
            self.put(&mut out, seq, stream, &m.payload);
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), self));
            }
        }
    }

    /// Adds chunk `seq` to `out` unless it was written already or its stream is filtered out.
    fn put(&mut self, out: &mut Vec<u8>, seq: u64, stream: OutputStream, data: &[u8]) {
        if seq < self.next {
            return; // a republished chunk, or one the store already gave
        }
        self.next = seq + 1;
        if self.only.is_some_and(|o| o != stream) {
            return;
        }
        if self.ndjson {
            let line = StoredChunk {
                seq,
                stream,
                data: data.to_vec(),
            };
            if serde_json::to_writer(&mut *out, &line).is_ok() {
                out.push(b'\n');
            }
        } else {
            out.extend_from_slice(data);
        }
    }

    fn fail(mut self, why: String) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        tracing::warn!(job = %self.job_id, error = %why, "output download cut short");
        self.store_from = None;
        self.held = 0;
        Some((Err(std::io::Error::other(why)), self))
    }
}
