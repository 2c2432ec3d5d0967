//! `POST /api/v1/jobs/{id}/stop` and `/kill` (and the NATS API's `jobs.stop`, `jobs.kill`):
//! checked here (owner with the own permission, anyone with the any permission, super users),
//! then carried out by the kill broker, which cancels a queued job or routes the request to the
//! one instance running it.

use crate::acl::Permission;
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, Caller};
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use taskwire_core::wire::{
    EventKind, JobDeleted, JobEvent, JobRecord, JobSpec, JobState, KillMode, KillOutcome,
    KillReply, KillRequest, Schedule, Target, Via,
};

/// How long to wait for the kill broker (it waits for the instance to end the tree).
const BROKER_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn stop(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    end_as(&st, &headers, &Caller::http(addr), &id, KillMode::Stop)
        .await
        .map(Json)
}

pub async fn kill(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    end_as(&st, &headers, &Caller::http(addr), &id, KillMode::Kill)
        .await
        .map(Json)
}

/// Stops or kills a job (cancels it while queued), from any door.
pub async fn end_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
    mode: KillMode,
) -> Result<Value, ApiError> {
    let (action, own, any) = match mode {
        KillMode::Stop => ("jobs.stop", Permission::StopOwn, Permission::StopAny),
        KillMode::Kill => ("jobs.kill", Permission::KillOwn, Permission::KillAny),
    };
    if let Some(v) = cancel_delayed(st, headers, caller, action, id, own, any).await? {
        return Ok(v);
    }
    let (who, record) = super::jobs::find_job(st, headers, caller, action, id).await?;
    let job_id = record.spec.job_id;
    let d = st.acl.check_job(&who, &record.spec.requested_by, own, any);
    st.enforce(&who, action, Some(id.to_string()), d, caller)
        .await?;
    if record.state.is_terminal() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "job {job_id} already ended ({}); only queued or running jobs can be stopped or killed",
                record.state
            ),
        ));
    }
    let req = KillRequest {
        job_id,
        mode,
        requested_by: who.user.clone(),
        at: chrono::Utc::now(),
        instance: (record.state == taskwire_core::wire::JobState::Running)
            .then_some(record.instance)
            .flatten(),
    };
    let body =
        serde_json::to_vec(&req).map_err(|e| ApiError::internal("encoding the request", e))?;
    let answer = tokio::time::timeout(
        BROKER_TIMEOUT,
        st.client.request(st.ns.kill_request(), body.into()),
    )
    .await;
    let msg = match answer {
        Ok(Ok(m)) => m,
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "no kill broker is running; start one (taskwire up runs one) and try again",
            ));
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the kill broker did not answer in time; the request may still be carried out, check the job",
            ));
        }
    };
    let reply: KillReply = serde_json::from_slice(&msg.payload)
        .map_err(|e| ApiError::internal("reading the kill broker's answer", e))?;
    match reply.outcome {
        KillOutcome::Signalled | KillOutcome::Cancelled => {
            serde_json::to_value(&reply).map_err(|e| ApiError::internal("encoding the answer", e))
        }
        KillOutcome::AlreadyFinished | KillOutcome::NotRunningHere => {
            Err(ApiError::new(ErrorCode::Conflict, reply.message))
        }
        KillOutcome::NoSuchJob => Err(ApiError::new(ErrorCode::NotFound, reply.message)),
        KillOutcome::InstanceUnreachable => {
            Err(ApiError::new(ErrorCode::Unavailable, reply.message))
        }
    }
}

/// A delayed job that waits for its time is cancelled by stop or kill: its one-shot schedule
/// is deleted, so it never runs. `None` when `id` names no such job.
async fn cancel_delayed(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    action: &str,
    id: &str,
    own: Permission,
    any: Permission,
) -> Result<Option<Value>, ApiError> {
    let Ok(job_id) = uuid::Uuid::parse_str(id) else {
        return Ok(None);
    };
    // A job that exists is stopped as usual, unless it is what a cancel that stopped half-way
    // left (its cancelled record, its schedule still there): that cancel is finished here.
    if st
        .store
        .get(&job_id)
        .await
        .map_err(|e| ApiError::internal("reading the job store", e))?
        .is_some_and(|(r, _)| !cancelled_before_run(&r))
    {
        return Ok(None);
    }
    let Some(s) = super::schedules::delayed(st, job_id).await? else {
        return Ok(None);
    };
    let who = st.authenticate(headers, caller, action).await?;
    let d = st.acl.check_job(&who, &s.owner, own, any);
    st.enforce(&who, action, Some(id.to_string()), d, caller)
        .await?;
    // The cancelled record is created under the job's id (compare-and-set): if the fire made
    // the job first, the job is stopped like any other; once this record exists, a fire in
    // flight finds it and makes no job.
    let record = cancelled_record(&s, job_id, &who.user);
    let created = st
        .store
        .create_new(&record)
        .await
        .map_err(|e| ApiError::internal("cancelling the delayed job", e))?;
    let record = if created {
        record
    } else {
        // A cancel that stopped half-way (its record made, its schedule still there) is
        // finished by this one; a job the fire made is stopped as usual.
        match st.store.get(&job_id).await {
            Ok(Some((r, _))) if cancelled_before_run(&r) => r,
            Ok(_) => return Ok(None),
            Err(e) => return Err(ApiError::internal("reading the job store", e)),
        }
    };
    let by = record.ended_by.clone().unwrap_or_else(|| who.user.clone());
    // Events first (the message ids make a repeat a no-op), then the schedule goes.
    for kind in [
        EventKind::Queued {
            spec: record.spec.clone(),
        },
        EventKind::Cancelled { by: by.clone() },
    ] {
        let event = JobEvent {
            job_id,
            at: record.updated_at,
            instance: None,
            kind,
        };
        st.store
            .publish_event(&event)
            .await
            .map_err(|e| ApiError::internal("recording the cancellation", e))?;
    }
    st.schedules
        .remove(&s, None)
        .await
        .map_err(|e| ApiError::internal("cancelling the delayed job", e))?;
    let reply = KillReply {
        job_id,
        outcome: KillOutcome::Cancelled,
        state: Some(JobState::Cancelled),
        signals: Vec::new(),
        survivors: None,
        message: format!(
            "the delayed job was cancelled by {by} before its time; it will never start"
        ),
    };
    serde_json::to_value(&reply)
        .map(Some)
        .map_err(|e| ApiError::internal("encoding the answer", e))
}

/// A delayed job's record made by a cancel before its time (not a job its fire made and
/// someone cancelled while it was queued).
pub(crate) fn cancelled_before_run(r: &JobRecord) -> bool {
    r.state == JobState::Cancelled
        && r.started_at.is_none()
        && r.spec.via == Via::Schedule
        && r.error
            .as_deref()
            .is_some_and(|e| e.ends_with(BEFORE_ITS_TIME))
}

/// How the record of a delayed job cancelled before its time ends its `error`.
const BEFORE_ITS_TIME: &str = "before its time";

/// The record of a delayed job cancelled before its time: never queued, never started.
fn cancelled_record(s: &Schedule, job_id: uuid::Uuid, by: &str) -> JobRecord {
    let now = chrono::Utc::now();
    let target = match s.target.instance {
        Some(g) => Target::Instance(g),
        None => Target::Channel(s.target.channel.clone().unwrap_or_else(|| "default".into())),
    };
    let mut record = JobRecord::queued(JobSpec {
        job_id,
        command: s.command.clone(),
        params: s.params.clone(),
        target,
        requested_by: s.owner.clone(),
        via: Via::Schedule,
        queued_at: now,
        attempt: 1,
        group_id: None,
        retry_of: None,
    });
    record.state = JobState::Cancelled;
    record.finished_at = Some(now);
    record.ended_by = Some(by.to_string());
    record.error = Some(format!("cancelled by {by} {BEFORE_ITS_TIME}"));
    record
}

/// `DELETE /api/v1/jobs/{id}`: removes a finished job's live record, its output in
/// `TW_OUTPUT`, and (through a `job_deleted` notice) its rows in the audit store, which keeps
/// a tombstone saying who deleted it. Needs `delete`, and `read_any` for another user's job.
/// The decision is in the audit log like every other.
pub async fn delete(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::http(addr);
    let action = "jobs.delete";
    let (who, record) = super::jobs::find_job(&st, &headers, &caller, action, &id).await?;
    let mut d = st.acl.check(&who, Permission::Delete);
    if d.allowed && record.spec.requested_by != who.user {
        let any = st.acl.check(&who, Permission::ReadAny);
        if !any.allowed {
            d = crate::acl::Decision {
                allowed: false,
                reason: format!(
                    "the job belongs to {}; deleting another user's job also needs read_any",
                    record.spec.requested_by
                ),
            };
        }
    }
    st.enforce(&who, action, Some(id.clone()), d, &caller)
        .await?;
    let job_id = record.spec.job_id;
    if !record.state.is_terminal() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "job {job_id} is {}; stop or cancel it first, then delete it",
                record.state
            ),
        ));
    }
    st.topology
        .output_stream
        .purge()
        .filter(st.ns.output(&job_id))
        .await
        .map_err(|e| ApiError::internal("deleting the job's output", e))?;
    st.topology
        .jobs
        .purge(job_id.to_string())
        .await
        .map_err(|e| ApiError::internal("deleting the job's record", e))?;
    st.store
        .publish_job_deleted(&JobDeleted {
            job_id,
            at: chrono::Utc::now(),
            by: who.user.clone(),
        })
        .await
        .map_err(|e| ApiError::internal("telling the audit store", e))?;
    Ok(Json(serde_json::json!({"deleted": job_id})))
}
