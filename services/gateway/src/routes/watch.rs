//! `{"op":"watch_jobs"}` on the multiplexed socket: every later change of a job the caller may
//! read (all jobs with `read_any`, one's own with `read_own`), pushed as it lands in `tw_jobs`,
//! as the live part of the record `GET /api/v1/jobs` lists. `{"type":"watching"}` says the
//! watch is in place: a client (re)loads its list after that frame and applies every `job`
//! frame that arrives from then on, so no change falls between the list and the watch.
//! A deleted job is announced as `{"type":"job_removed","job_id":..}` (to `read_any` watchers,
//! and to `read_own` watchers for the jobs of theirs this watch has shown).

use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, Caller};
use axum::extract::ws::{Message, Utf8Bytes};
use axum::http::HeaderMap;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashSet;
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
    let _ = tx.send(text(json!({"type": "watching"}))).await;
    Ok(tokio::spawn(async move {
        // With `read_own`: the caller's jobs this watch has shown (a removal names no owner).
        let mut own: HashSet<String> = HashSet::new();
        while let Some(change) = changes.next().await {
            let Ok(entry) = change else {
                let err = ApiError::new(
                    ErrorCode::Unavailable,
                    "the job watch was interrupted; send watch_jobs again and reload the list",
                );
                let frame = json!({"type": "error", "op": "watch_jobs",
                    "error": {"code": err.code, "message": err.message}});
                let _ = tx.send(text(frame)).await;
                return;
            };
            if Uuid::parse_str(&entry.key).is_err() {
                continue;
            }
            let frame = if entry.operation == async_nats::jetstream::kv::Operation::Put {
                let Ok(record) = serde_json::from_slice::<JobRecord>(&entry.value) else {
                    continue;
                };
                if let Some(user) = &only {
                    if *user != record.spec.requested_by {
                        continue;
                    }
                    own.insert(entry.key.clone());
                }
                json!({"type": "job", "job": StoredJob::live(record)})
            } else {
                if only.is_some() && !own.remove(&entry.key) {
                    continue;
                }
                json!({"type": "job_removed", "job_id": entry.key})
            };
            if tx.send(text(frame)).await.is_err() {
                return;
            }
        }
    }))
}

fn text(frame: Value) -> Message {
    Message::Text(Utf8Bytes::from(frame.to_string()))
}
