//! `GET /api/v1/jobs/{id}/output`: the log as stored so far, as raw bytes (default) or as
//! NDJSON chunks (`?format=ndjson` or `Accept: application/x-ndjson`) that keep stdout, stderr
//! and system lines apart, bytes intact (base64).

use crate::error::{ApiError, ErrorCode};
use crate::history;
use crate::state::{AppState, Caller};
use async_nats::jetstream::consumer;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use std::net::SocketAddr;
use taskwire_core::names::{HDR_SEQ, HDR_STREAM};
use taskwire_core::wire::OutputStream;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputParams {
    pub format: Option<String>,
    /// Only this stream (`stdout`, `stderr` or `system`).
    pub stream: Option<OutputStream>,
}

pub async fn full(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<OutputParams>,
) -> Result<Response, ApiError> {
    let caller = Caller::http(addr);
    let record = super::jobs::load_job(&st, &headers, &caller, "jobs.output", &id).await?;
    let ndjson = match q.format.as_deref() {
        Some("ndjson") => true,
        Some("text") => false,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("format '{other}' is not known; use text or ndjson"),
            ));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/x-ndjson")),
    };
    let job_id = record.spec.job_id;
    // Where the log starts: the stream while it still holds chunk 1, else the audit store
    // (then the stream for what the store does not have yet).
    let stream_has_start = crate::feed::stream_holds_start(&st, &job_id)
        .await
        .map_err(|e| ApiError::internal("reading the output", e))?;
    let mut c = st
        .topology
        .output_stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: st.ns.output(&job_id),
            ..Default::default()
        })
        .await
        .map_err(|e| ApiError::internal("reading the output", e))?;
    let held = c
        .info()
        .await
        .map_err(|e| ApiError::internal("reading the output", e))?
        .num_pending;
    let live = if held > 0 {
        Some(
            c.messages()
                .await
                .map_err(|e| ApiError::internal("reading the output", e))?,
        )
    } else {
        None
    };
    let reader = Reader {
        st: st.clone(),
        job_id,
        store_from: (!stream_has_start).then_some(1),
        live,
        held,
        next: 1,
        only: q.stream,
        ndjson,
    };
    // Written as it is read, page by page: a long log never sits whole in memory. A read that
    // fails half-way cuts the response short (no clean end), so a client cannot take it for
    // the whole log.
    let body = axum::body::Body::from_stream(futures::stream::unfold(reader, Reader::step));
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if ndjson {
            "application/x-ndjson"
        } else {
            "application/octet-stream"
        }),
    );
    Ok(resp)
}

/// How long to wait for the next message the stream held when the request came.
const HELD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The log, read in sequence order: pages of the audit store first when the stream no longer
/// holds the start, then the chunks the stream holds (each sequence once).
struct Reader {
    st: AppState,
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
                match history::stored_page(&self.st, self.job_id, from).await {
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
            let line = serde_json::json!({
                "seq": seq,
                "stream": stream,
                "data": base64::engine::general_purpose::STANDARD.encode(data),
            });
            out.extend_from_slice(line.to_string().as_bytes());
            out.push(b'\n');
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
