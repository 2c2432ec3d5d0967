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
use futures::StreamExt;
use serde::Deserialize;
use std::collections::BTreeMap;
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
    let c = st
        .topology
        .output_stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: st.ns.output(&record.spec.job_id),
            ..Default::default()
        })
        .await
        .map_err(|e| ApiError::internal("reading the output", e))?;
    let mut c = c;
    let pending = c
        .info()
        .await
        .map_err(|e| ApiError::internal("reading the output", e))?
        .num_pending;
    let mut chunks: BTreeMap<u64, (OutputStream, bytes::Bytes)> = BTreeMap::new();
    if pending > 0 {
        let mut msgs = c
            .messages()
            .await
            .map_err(|e| ApiError::internal("reading the output", e))?;
        for _ in 0..pending {
            let Some(Ok(m)) = msgs.next().await else {
                break;
            };
            let m = m.message;
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
            // Ordered by sequence, a republished chunk kept once.
            chunks.entry(seq).or_insert((stream, m.payload));
        }
    }
    if !chunks.contains_key(&1) {
        // The stream no longer holds the beginning (or the job is no longer live): the audit
        // store has the rest.
        history::stored_chunks(&st, record.spec.job_id, &mut chunks).await?;
    }
    let keep = |s: &OutputStream| q.stream.is_none_or(|w| w == *s);
    if ndjson {
        let mut out = String::new();
        for (seq, (stream, data)) in chunks.iter().filter(|(_, (s, _))| keep(s)) {
            let line = serde_json::json!({
                "seq": seq,
                "stream": stream,
                "data": base64::engine::general_purpose::STANDARD.encode(data),
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        let mut resp = out.into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        Ok(resp)
    } else {
        let mut out = Vec::new();
        for (_, (_, data)) in chunks.iter().filter(|(_, (s, _))| keep(s)) {
            out.extend_from_slice(data);
        }
        let mut resp = out.into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Ok(resp)
    }
}
