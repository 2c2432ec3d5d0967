//! Delayed jobs: `POST /api/v1/jobs` with a `not_before` ahead makes a one-shot schedule of
//! the caller that queues the job at (not before) that instant. Its job id is known at once
//! (derived from the schedule and the fire time, as every fire's is); until it is queued the
//! job reads as `scheduled` ([`ScheduledJob`]); a stop or kill before then cancels it.
//!
//! A cancel first creates the job's record, `cancelled` with `cancelled_before_queued` set,
//! by compare-and-set under the job's id, and only then removes the schedule. So a fire
//! already on its way finds the record and makes no job (the submit answers 409), and a
//! cancel that stopped half-way is finished by the next stop or kill. Never matched by the
//! text of a message: the marker is a field of the record.

use super::schedule_rules;
use crate::error::{ApiError, ErrorCode};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Permission, Principal};
use crate::ids::fire_job_id;
use chrono::{DateTime, Utc};
use taskwire_core::wire::api::{ScheduledJob, ScheduledState, SubmitRequest};
use taskwire_core::wire::{
    EventKind, JobEvent, JobRecord, JobSpec, JobState, KillOutcome, KillReply, Misfire, Overlap,
    Schedule, Target, Timing, Via,
};
use uuid::Uuid;

/// Makes `req` a delayed job of `who` queued at `at` (checked: `who` may run the command
/// now, and is checked again at the fire). Audited as `jobs.submit`.
pub async fn create(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    req: SubmitRequest,
    at: DateTime<Utc>,
) -> Result<ScheduledJob, ApiError> {
    let action = Action::JobsSubmit;
    let d = gw.acl.check_run(who, &req.command);
    if !d.allowed {
        let target = Some(format!("{} (not before {at})", req.command));
        let denied = ApiError::new(ErrorCode::Forbidden, d.reason);
        return Err(gw.refuse(&who.user, action, target, denied, caller).await);
    }
    let target = schedule_rules::target_of(&req).map_err(ApiError::invalid)?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let job_id = fire_job_id(&who.user, &id, at);
    let s = Schedule {
        id,
        name: format!("delayed job {job_id}"),
        command: req.command.clone(),
        params: req.params.clone(),
        target,
        timing: Timing::Once { at },
        owner: who.user.clone(),
        owner_roles: who.roles.clone(),
        enabled: true,
        overlap: Overlap::Allow,
        misfire: Misfire::RunOnce,
        jitter: None,
        active_since: now,
        job_id: Some(job_id),
        created_at: now,
        updated_at: now,
    };
    gw.schedules
        .create(&s)
        .await
        .map_err(|e| ApiError::internal("storing the delayed job", e))?;
    gw.schedules
        .index_job(&job_id, &id)
        .await
        .map_err(|e| ApiError::internal("storing the delayed job", e))?;
    gw.audit(
        Some(&who.user),
        action,
        Some(format!("{} -> {job_id} (not before {at})", req.command)),
        true,
        &d.reason,
        caller,
    )
    .await?;
    view(&s).ok_or_else(|| ApiError::internal("describing the delayed job", "no job id"))
}

/// A delayed job as the API shows it while it waits (`None` for a schedule that is not a
/// delayed job's).
pub fn view(s: &Schedule) -> Option<ScheduledJob> {
    let (Some(job_id), Timing::Once { at }) = (s.job_id, &s.timing) else {
        return None;
    };
    Some(ScheduledJob {
        job_id,
        command: s.command.clone(),
        params: s.params.clone(),
        requested_by: s.owner.clone(),
        state: ScheduledState::Scheduled,
        not_before: *at,
        schedule_id: s.id,
        queued_at: None,
    })
}

/// The schedule of delayed job `job_id`, while it waits for its time.
pub async fn find(gw: &Gateway, job_id: Uuid) -> Result<Option<Schedule>, ApiError> {
    let read = |e| ApiError::internal("reading the schedules", e);
    let Some(sid) = gw.schedules.job_index(&job_id).await.map_err(read)? else {
        return Ok(None);
    };
    let Some((s, _)) = gw.schedules.get(&sid).await.map_err(read)? else {
        return Ok(None);
    };
    Ok(waits(gw, &s).await?.then_some(s))
}

/// Delayed job `job_id` as `GET /api/v1/jobs/{id}` shows it, while it waits for its time (the
/// caller has found no record of the job).
pub async fn waiting_view(gw: &Gateway, job_id: Uuid) -> Result<Option<ScheduledJob>, ApiError> {
    Ok(find(gw, job_id).await?.as_ref().and_then(view))
}

/// Whether the delayed job of `s` still waits for its time: its one fire is neither taken
/// yet nor finished. (Once it is, the job's own record speaks for it.)
async fn waits(gw: &Gateway, s: &Schedule) -> Result<bool, ApiError> {
    let Timing::Once { at } = s.timing else {
        return Ok(false);
    };
    let (p, _) = gw
        .schedules
        .progress(&s.id)
        .await
        .map_err(|e| ApiError::internal("reading the schedules", e))?;
    Ok(p.through.is_none_or(|t| t < at) || !p.inflight.is_empty())
}

/// Delayed jobs not yet queued, of `user` (all users when `None`) and `command`, soonest
/// first.
pub async fn waiting(
    gw: &Gateway,
    user: Option<&str>,
    command: Option<&str>,
) -> Result<Vec<ScheduledJob>, ApiError> {
    let all = gw
        .schedules
        .list()
        .await
        .map_err(|e| ApiError::internal("reading the schedules", e))?;
    let mut out = Vec::new();
    for s in all {
        let Some(job) = view(&s) else { continue };
        if user.is_some_and(|u| u != s.owner) || command.is_some_and(|c| c != s.command) {
            continue;
        }
        if !waits(gw, &s).await? {
            continue;
        }
        let queued = gw
            .jobs
            .get(&job.job_id)
            .await
            .map_err(|e| ApiError::internal("reading the job store", e))?;
        if queued.is_none() {
            out.push(job);
        }
    }
    // soonest first, by instant (their texts need not sort alike)
    out.sort_by_key(|j| j.not_before);
    Ok(out)
}

/// Cancels delayed job `job_id` if it still waits (or finishes a cancel of it that stopped
/// half-way): `who` needs `own` for its own job, `any` for another's (audited as `action`).
/// `None` when `job_id` names no delayed job that waits: the job is stopped as any other.
/// The caller calls it only for a job without a record, or whose record a cancel before its
/// time made (`cancelled_before_queued`): any other job is stopped as usual.
pub async fn cancel(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
    job_id: Uuid,
    (own, any): (Permission, Permission),
) -> Result<Option<KillReply>, ApiError> {
    let read = |e| ApiError::internal("reading the job store", e);
    let Some(s) = find(gw, job_id).await? else {
        return Ok(None);
    };
    let d = gw.acl.check_job(who, &s.owner, own, any);
    gw.enforce(who, action, Some(job_id.to_string()), d, caller)
        .await?;
    // The cancelled record is created under the job's id (compare-and-set): if the fire made
    // the job first, the job is stopped like any other; once this record exists, a fire in
    // flight finds it and makes no job.
    let record = cancelled_record(&s, job_id, &who.user);
    let created = gw
        .jobs
        .create_new(&record)
        .await
        .map_err(|e| ApiError::internal("cancelling the delayed job", e))?;
    let record = if created {
        record
    } else {
        match gw.jobs.get(&job_id).await.map_err(read)? {
            Some((r, _)) if r.cancelled_before_queued => r,
            _ => return Ok(None),
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
        gw.jobs
            .publish_event(&event)
            .await
            .map_err(|e| ApiError::internal("recording the cancellation", e))?;
    }
    gw.schedules
        .remove(&s, None)
        .await
        .map_err(|e| ApiError::internal("cancelling the delayed job", e))?;
    Ok(Some(KillReply {
        job_id,
        outcome: KillOutcome::Cancelled,
        state: Some(JobState::Cancelled),
        signals: Vec::new(),
        survivors: None,
        message: format!(
            "the delayed job was cancelled by {by} before its time; it will never start"
        ),
    }))
}

/// The record of a delayed job cancelled before its time: never queued, never started.
fn cancelled_record(s: &Schedule, job_id: Uuid, by: &str) -> JobRecord {
    let target = match s.target.instance {
        Some(g) => Target::Instance(g),
        None => Target::Channel(s.target.channel.clone().unwrap_or_else(|| "default".into())),
    };
    let spec = JobSpec::new(s.command.clone(), target, s.owner.clone(), Via::Schedule)
        .with_id(job_id)
        .with_params(s.params.clone());
    let mut record = JobRecord::queued(spec);
    record.state = JobState::Cancelled;
    record.finished_at = Some(record.spec.queued_at);
    record.ended_by = Some(by.to_string());
    record.error = Some(format!("cancelled by {by} before its time"));
    record.cancelled_before_queued = true;
    record
}
