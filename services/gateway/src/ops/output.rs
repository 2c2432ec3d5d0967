//! A job's log as stored so far, written as it is read: raw bytes, or NDJSON chunks that
//! keep stdout, stderr and system lines apart (bytes intact, base64); and the live feed of a
//! job's output for a viewer. Both only for callers who may read the job.

use super::jobs;
use crate::error::ApiError;
use crate::feed::Feed;
use crate::feed::reader::{ChunkReader, Until};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Permission, Principal};
use bytes::Bytes;
use std::sync::Arc;
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
    let read = (Permission::ReadOwn, Permission::ReadAny);
    if let Some(record) =
        jobs::decided_known(gw, who, caller, Action::JobsStream, job_id, read).await?
    {
        return Ok(gw.feeds.get(&record));
    }
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
    // Only the instance that claimed the job publishes its output (a job never run has none).
    let reader = ChunkReader::open(src, job_id, record.instance, 1, Until::Held)
        .await
        .map_err(|e| ApiError::internal("reading the output", e))?;
    let log = Log {
        reader,
        job_id,
        only,
        ndjson: format == OutputFormat::Ndjson,
        failed: false,
    };
    Ok(futures::stream::unfold(log, Log::step))
}

/// The log as the download writes it, chunk by chunk.
struct Log {
    reader: ChunkReader,
    job_id: Uuid,
    only: Option<OutputStream>,
    ndjson: bool,
    failed: bool,
}

impl Log {
    async fn step(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if self.failed {
            return None;
        }
        loop {
            let p = match self.reader.next().await {
                Ok(Some(p)) => p,
                Ok(None) => return None,
                Err(why) => {
                    // cut short, not ended as if whole
                    tracing::warn!(job = %self.job_id, error = %why, "output download cut short");
                    self.failed = true;
                    return Some((Err(std::io::Error::other(why)), self));
                }
            };
            if self.only.is_some_and(|o| o != p.stream) {
                continue;
            }
            if !self.ndjson {
                return Some((Ok(p.data), self));
            }
            let line = StoredChunk {
                seq: p.seq,
                stream: p.stream,
                data: p.data.to_vec(),
            };
            let mut out = Vec::with_capacity(p.data.len() * 4 / 3 + 64);
            if serde_json::to_writer(&mut out, &line).is_ok() {
                out.push(b'\n');
            }
            return Some((Ok(Bytes::from(out)), self));
        }
    }
}
