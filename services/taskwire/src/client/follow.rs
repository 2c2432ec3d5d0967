//! Following jobs live: the gateway's output stream from a sequence number (a WebSocket with
//! binary chunk frames, or Server-Sent Events where something between does not pass
//! WebSockets on), written byte for byte (stdout to stdout, stderr and taskwire's own lines to stderr), or as
//! JSON lines, or line by line with a label when several jobs are followed at once. A dropped
//! connection or a "too slow" notice resumes from the next sequence, so nothing is lost or
//! written twice.

use super::api::Api;
use super::sse::SseParser;
use super::ws::{Incoming, Refused};
use crate::error::CliError;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use taskwire_core::retry::Backoff;
use taskwire_core::wire::api::frames::sse;
use taskwire_core::wire::api::{Frame, JobEnd};
use taskwire_core::wire::{OutputStream, StoredChunk};
use uuid::Uuid;

/// How followed output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The bytes as the job wrote them.
    Raw,
    /// One JSON document per chunk and per end.
    Json,
    /// Whole lines, each prefixed with the job's label (several jobs at once).
    Labelled,
}

/// Where followed output goes; shared by the jobs followed at once.
#[derive(Debug)]
pub struct Writer {
    mode: Mode,
    partial: Mutex<std::collections::HashMap<(String, bool), Vec<u8>>>,
}

impl Writer {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            partial: Mutex::new(Default::default()),
        }
    }

    /// Writes one chunk of the job labelled `label`.
    pub fn chunk(&self, job: Uuid, label: &str, c: &StoredChunk) -> Result<(), CliError> {
        self.write(job, label, c.seq, c.stream, &c.data)
    }

    /// Writes chunk `seq` (`data`, from `stream`) of the job labelled `label`.
    pub fn write(
        &self,
        job: Uuid,
        label: &str,
        seq: u64,
        stream: OutputStream,
        data: &[u8],
    ) -> Result<(), CliError> {
        let to_err = stream != OutputStream::Stdout;
        match self.mode {
            Mode::Raw => emit(to_err, data),
            Mode::Json => {
                let frame = Frame::Chunk {
                    job_id: job,
                    seq,
                    stream,
                    data: bytes::Bytes::copy_from_slice(data),
                };
                emit(false, format!("{}\n", frame.to_json()).as_bytes())
            }
            Mode::Labelled => {
                let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
                let buf = partial.entry((label.to_string(), to_err)).or_default();
                buf.extend_from_slice(data);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let mut out = format!("[{label}] ").into_bytes();
                    out.extend_from_slice(&line);
                    emit(to_err, &out)?;
                }
                Ok(())
            }
        }
    }

    /// Writes how the job ended (JSON mode), and any unterminated last line (labelled mode).
    pub fn end(&self, job: Uuid, label: &str, end: &JobEnd) -> Result<(), CliError> {
        match self.mode {
            Mode::Raw => {
                // Say why a job ended early when its exit code cannot (killed, timed out,
                // lost, cancelled, or it never started).
                let own_code =
                    end.state == taskwire_core::wire::JobState::Failed && end.exit_code.is_some();
                if end.state != taskwire_core::wire::JobState::Succeeded && !own_code {
                    let why = end
                        .error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    eprintln!(
                        "taskwire: job {job} {}{}",
                        end.state,
                        super::table::clean(&why)
                    );
                }
                Ok(())
            }
            Mode::Json => {
                let frame = Frame::End {
                    job_id: Some(job),
                    end: end.clone(),
                };
                emit(false, format!("{}\n", frame.to_json()).as_bytes())
            }
            Mode::Labelled => {
                let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
                for to_err in [false, true] {
                    if let Some(rest) = partial.remove(&(label.to_string(), to_err))
                        && !rest.is_empty()
                    {
                        let mut out = format!("[{label}] ").into_bytes();
                        out.extend_from_slice(&rest);
                        out.push(b'\n');
                        emit(to_err, &out)?;
                    }
                }
                Ok(())
            }
        }
    }
}

fn emit(to_err: bool, bytes: &[u8]) -> Result<(), CliError> {
    let r = if to_err {
        let mut e = std::io::stderr().lock();
        e.write_all(bytes).and_then(|_| e.flush())
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(bytes).and_then(|_| o.flush())
    };
    r.map_err(CliError::Write)
}

/// How long the stream may stay unreachable before following gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Follows `job` from `from_seq` until it ends; returns how it ended.
pub async fn follow(
    api: &Api,
    job: Uuid,
    label: &str,
    from_seq: u64,
    out: &Writer,
) -> Result<JobEnd, CliError> {
    let mut next = from_seq.max(1);
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let before = next;
        let mut connected = false;
        let attempt = follow_once(api, job, label, &mut next, out, &mut connected).await;
        if connected {
            failing_since = None;
        }
        match attempt {
            Ok(Some(end)) => return Ok(end),
            Ok(None) if next > before => {
                // Closed early or told to resume after progress: go on from `next` at once.
                backoff.reset();
            }
            Ok(None) => backoff.wait().await,
            Err(e) if retryable(&e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > GIVE_UP_AFTER {
                    return Err(e);
                }
                backoff.wait().await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A lost connection, or a server or proxy that cannot answer right now.
fn retryable(e: &CliError) -> bool {
    match e {
        CliError::Unreachable { .. } => true,
        CliError::Api(f) => f.status >= 500 || f.status == 429,
        _ => false,
    }
}

/// One connection: `Some(end)` when the job's end arrived, `None` when the stream stopped
/// before it (resume from `next`).
async fn follow_once(
    api: &Api,
    job: Uuid,
    label: &str,
    next: &mut u64,
    out: &Writer,
    connected: &mut bool,
) -> Result<Option<JobEnd>, CliError> {
    let path = format!("/api/v1/jobs/{job}/stream");
    let mut socket = match api
        .websocket(&path, &[("from_seq", next.to_string())])
        .await
    {
        Ok(s) => s,
        Err(Refused::Error(e)) => return Err(e),
        Err(Refused::NoUpgrade) => return follow_sse(api, job, label, next, out, connected).await,
    };
    *connected = true;
    loop {
        match socket.next().await? {
            Incoming::Chunk { seq, stream, data } => {
                if seq >= *next {
                    out.write(job, label, seq, stream, &data)?;
                    *next = seq + 1;
                }
            }
            Incoming::Frame(Frame::End { end, .. }) => {
                out.end(job, label, &end)?;
                return Ok(Some(end));
            }
            Incoming::Frame(Frame::Error { error, .. }) => {
                return Err(CliError::Api(crate::error::ApiFailure {
                    status: error.code.http_status(),
                    code: error.code.as_str().to_string(),
                    message: error.message,
                    url: api.conn.url.clone(),
                }));
            }
            Incoming::Frame(_) => {}
            Incoming::Closed => return Ok(None),
        }
    }
}

/// [`follow_once`] over Server-Sent Events.
async fn follow_sse(
    api: &Api,
    job: Uuid,
    label: &str,
    next: &mut u64,
    out: &Writer,
    connected: &mut bool,
) -> Result<Option<JobEnd>, CliError> {
    let path = format!("/api/v1/jobs/{job}/stream");
    let mut resp = api.events(&path, &[("from_seq", next.to_string())]).await?;
    *connected = true;
    let mut parser = SseParser::default();
    while let Some(bytes) = api.next_chunk(&mut resp).await? {
        for ev in parser.feed(&bytes) {
            let frame = || -> Result<Frame, CliError> {
                serde_json::from_str(&ev.data).map_err(|e| CliError::BadAnswer {
                    url: api.conn.url.clone(),
                    detail: format!("{} event: {e}", ev.event),
                })
            };
            match ev.event.as_str() {
                sse::CHUNK => {
                    let Frame::Chunk {
                        seq, stream, data, ..
                    } = frame()?
                    else {
                        continue;
                    };
                    if seq >= *next {
                        out.write(job, label, seq, stream, &data)?;
                        *next = seq + 1;
                    }
                }
                sse::END => {
                    let Frame::End { end, .. } = frame()? else {
                        continue;
                    };
                    out.end(job, label, &end)?;
                    return Ok(Some(end));
                }
                sse::SLOW => return Ok(None),
                _ => {}
            }
        }
    }
    Ok(None)
}
