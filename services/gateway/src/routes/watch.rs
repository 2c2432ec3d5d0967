//! `{"op":"watch_jobs"}` on the multiplexed socket: every later change of a job the caller may
//! read (all jobs with `read_any`, one's own with `read_own`), pushed as it lands in `tw_jobs`,
//! in the shape `GET /api/v1/jobs` lists. A console shows the list from the API once, then
//! keeps it current from these frames without polling.

use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, Caller};
use axum::extract::ws::{Message, Utf8Bytes};
use axum::http::HeaderMap;
use futures::StreamExt;
use serde_json::json;
use taskwire_core::wire::{JobRecord, StoredJob};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Checks the caller's read permission (audited as `jobs.watch`), then follows `tw_jobs`.
pub async fn start(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    tx: mpsc::Sender<Message>,
) -> Result<JoinHandle<()>, ApiError> {
    let who = st.authenticate(headers, caller, "jobs.watch").await?;
    let scope = super::jobs::read_scope(st, &who, caller, "jobs.watch").await?;
    let only = (!scope.any).then(|| who.user.clone());
    let mut changes = st
        .topology
        .jobs
        .watch_all()
        .await
        .map_err(|e| ApiError::internal("watching jobs", e))?;
    Ok(tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            let Ok(entry) = change else {
                let err = ApiError::new(
                    ErrorCode::Unavailable,
                    "the job watch was interrupted; send watch_jobs again and reload the list",
                );
                let frame = json!({"type": "error", "op": "watch_jobs",
                    "error": {"code": err.code, "message": err.message}});
                let _ = tx
                    .send(Message::Text(Utf8Bytes::from(frame.to_string())))
                    .await;
                return;
            };
            if entry.operation != async_nats::jetstream::kv::Operation::Put
                || Uuid::parse_str(&entry.key).is_err()
            {
                continue;
            }
            let Ok(record) = serde_json::from_slice::<JobRecord>(&entry.value) else {
                continue;
            };
            if only
                .as_ref()
                .is_some_and(|u| *u != record.spec.requested_by)
            {
                continue;
            }
            let frame = json!({"type": "job", "job": StoredJob::live(record)});
            if tx
                .send(Message::Text(Utf8Bytes::from(frame.to_string())))
                .await
                .is_err()
            {
                return;
            }
        }
    }))
}
