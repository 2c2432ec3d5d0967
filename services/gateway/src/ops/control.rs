//! Stop and kill (a queued job is cancelled instead, a delayed one cancelled before its
//! time), and deleting a finished job. Checked here (the owner with the own permission,
//! anyone with the any permission, super users), then carried out: a job this gateway saw
//! running is asked of its instance at once, anything else goes to the kill broker, which
//! cancels a queued job or routes the request to the one instance running it.

use super::{delayed, jobs};
use crate::error::{ApiError, ErrorCode};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Permission, Principal};
use std::time::Duration;
use taskwire_core::auth::roles;
use taskwire_core::wire::api::Deleted;
use taskwire_core::wire::{
    JobDeleted, JobRecord, JobState, KillMode, KillOutcome, KillReply, KillRequest,
};
use uuid::Uuid;

/// How long to wait for the kill broker (it waits for the instance to end the tree).
const BROKER_TIMEOUT: Duration = Duration::from_secs(60);

/// The action and the own/any permission pair of `mode`.
fn rule(mode: KillMode) -> (Action, (Permission, Permission)) {
    match mode {
        KillMode::Stop => (Action::JobsStop, (Permission::StopOwn, Permission::StopAny)),
        KillMode::Kill => (Action::JobsKill, (Permission::KillOwn, Permission::KillAny)),
    }
}

/// Stops or kills job `job_id` (cancels it while queued or delayed): what happened. Like a
/// submit, it waits out an outage of NATS (`[gateway] outage_wait`) before it answers 503.
pub async fn end(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    job_id: Uuid,
    mode: KillMode,
) -> Result<KillReply, ApiError> {
    crate::gateway::within_outage_wait(gw, end_now(gw, who, caller, job_id, mode)).await
}

async fn end_now(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    job_id: Uuid,
    mode: KillMode,
) -> Result<KillReply, ApiError> {
    let (action, (own, any)) = rule(mode);
    // A job this gateway knows: decided from its owner, audited while its record is read
    // (or, once seen running, without reading it: the broker is told its instance).
    let seen = match gw
        .known
        .get(&job_id)
        .and_then(|k| Some((k.owner, k.running_on?)))
    {
        Some((owner, instance)) => {
            let d = gw.acl.check_job(who, &owner, own, any);
            gw.enforce(who, action, Some(job_id.to_string()), d, caller)
                .await?;
            Some(Seen {
                state: JobState::Running,
                instance: Some(instance),
            })
        }
        None => jobs::decided_known(gw, who, caller, action, job_id, (own, any))
            .await?
            .map(|r| Seen::of(&r)),
    };
    let record = match seen {
        Some(seen) => seen,
        None => match checked(gw, who, caller, job_id, mode).await? {
            Checked::Record(seen) => seen,
            Checked::Done(reply) => return Ok(reply),
        },
    };
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
        instance: (record.state == JobState::Running)
            .then_some(record.instance)
            .flatten(),
    };
    let direct = match req.instance {
        Some(instance) => ask_instance(gw, &req, instance).await?,
        None => None,
    };
    let reply = match direct {
        Some(reply) => reply,
        // The broker decides from the record: the job may have ended, or not started yet.
        None => {
            ask_broker(
                gw,
                &KillRequest {
                    instance: None,
                    ..req
                },
            )
            .await?
        }
    };
    if reply.outcome != KillOutcome::NotRunningHere {
        gw.known.forget(&job_id);
    }
    match reply.outcome {
        KillOutcome::Signalled | KillOutcome::Cancelled => Ok(reply),
        KillOutcome::AlreadyFinished | KillOutcome::NotRunningHere => {
            Err(ApiError::new(ErrorCode::Conflict, reply.message))
        }
        KillOutcome::NoSuchJob => Err(ApiError::new(ErrorCode::NotFound, reply.message)),
        KillOutcome::InstanceUnreachable => {
            Err(ApiError::new(ErrorCode::Unavailable, reply.message))
        }
    }
}

/// The state and instance the broker is told of.
struct Seen {
    state: JobState,
    instance: Option<Uuid>,
}

impl Seen {
    fn of(r: &JobRecord) -> Self {
        Self {
            state: r.state,
            instance: r.instance,
        }
    }
}

/// What looking up a job this gateway did not know gave.
enum Checked {
    /// What its record said, the decision allowed and audited.
    Record(Seen),
    /// A delayed job, cancelled before its time: the answer.
    Done(KillReply),
}

/// A job this gateway did not know: read it (a delayed job is cancelled at once), then the
/// decision, audited.
async fn checked(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    job_id: Uuid,
    mode: KillMode,
) -> Result<Checked, ApiError> {
    let (action, (own, any)) = rule(mode);
    let live = jobs::live(gw, job_id).await?;
    // No record yet, or the one a cancel that stopped half-way left: a delayed job's cancel.
    if live.as_ref().is_none_or(|r| r.cancelled_before_queued)
        && let Some(reply) = delayed::cancel(gw, who, caller, action, job_id, (own, any)).await?
    {
        return Ok(Checked::Done(reply));
    }
    let record = match live {
        Some(r) => r,
        None => jobs::find(gw, who, caller, action, job_id).await?,
    };
    let d = gw.acl.check_job(who, &record.spec.requested_by, own, any);
    gw.enforce(who, action, Some(job_id.to_string()), d, caller)
        .await?;
    Ok(Checked::Record(Seen::of(&record)))
}

/// Asks `instance`, where this gateway saw the job running, to end it: its answer, or `None`
/// when the kill broker must decide instead (the instance does not run the job, or is not
/// there to take the request right now). The answer comes in the part of the gateway's inbox
/// kept for that instance's kill answers, the only part of it an executor may publish into.
async fn ask_instance(
    gw: &Gateway,
    req: &KillRequest,
    instance: Uuid,
) -> Result<Option<KillReply>, ApiError> {
    let body: bytes::Bytes = serde_json::to_vec(req)
        .map_err(|e| ApiError::internal("encoding the request", e))?
        .into();
    let request = async_nats::Request::new()
        .payload(body)
        .inbox(roles::kill_reply(
            &gw.client,
            &roles::Role::Gateway,
            &instance,
        ))
        .timeout(Some(BROKER_TIMEOUT));
    let unreachable = |why: String| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "instance {instance} {why}; the request may still be carried out, check the job"
            ),
        )
    };
    match gw
        .client
        .send_request(gw.ns.exec_kill(&instance), request)
        .await
    {
        Ok(m) => match serde_json::from_slice::<KillReply>(&m.payload) {
            Ok(r) if r.outcome == KillOutcome::NotRunningHere => Ok(None),
            Ok(r) => Ok(Some(r)),
            Err(e) => Err(unreachable(format!("answered something unreadable ({e})"))),
        },
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(None),
        Err(e) if e.kind() == async_nats::RequestErrorKind::TimedOut => Err(unreachable(format!(
            "did not answer within {}",
            taskwire_core::units::format_duration(BROKER_TIMEOUT)
        ))),
        // Not sent (the connection is closing): the broker's path waits out an outage.
        Err(_) => Ok(None),
    }
}

/// Sends `req` to the kill brokers' queue group and reads the answer. While no broker is
/// there to take it (one restarting, or NATS coming back), it is sent again until the
/// request's outage deadline; never after a broker took it and did not answer in time, which
/// may still be carried out.
async fn ask_broker(gw: &Gateway, req: &KillRequest) -> Result<KillReply, ApiError> {
    let body: bytes::Bytes = serde_json::to_vec(req)
        .map_err(|e| ApiError::internal("encoding the request", e))?
        .into();
    let deadline = gw.outage_deadline();
    let mut backoff =
        taskwire_core::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let msg = loop {
        // The client's default request timeout (10 s) would cut a stop whose grace is as long.
        let request = async_nats::Request::new()
            .payload(body.clone())
            .timeout(Some(BROKER_TIMEOUT));
        let answer = gw.client.send_request(gw.ns.kill_request(), request).await;
        match answer {
            Ok(m) => break m,
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                if tokio::time::Instant::now() + backoff.peek() < deadline {
                    backoff.wait().await;
                    continue;
                }
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
        }
    };
    serde_json::from_slice(&msg.payload)
        .map_err(|e| ApiError::internal("reading the kill broker's answer", e))
}

/// Removes a finished job's live record, its output in `TW_OUTPUT`, and (through a
/// `job_deleted` notice) its rows in the audit store, which keeps a tombstone saying who
/// deleted it. Needs `delete`, and `read_any` for another user's job. The decision is in the
/// audit log like every other.
pub async fn delete(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    job_id: Uuid,
) -> Result<Deleted, ApiError> {
    let action = Action::JobsDelete;
    let record = jobs::find(gw, who, caller, action, job_id).await?;
    let d = gw.acl.check_delete(who, &record.spec.requested_by);
    gw.enforce(who, action, Some(job_id.to_string()), d, caller)
        .await?;
    if !record.state.is_terminal() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "job {job_id} is {}; stop or cancel it first, then delete it",
                record.state
            ),
        ));
    }
    gw.topology
        .output_stream
        .purge()
        .filter(gw.ns.output_any(&job_id))
        .await
        .map_err(|e| ApiError::internal("deleting the job's output", e))?;
    gw.topology
        .jobs
        .purge(job_id.to_string())
        .await
        .map_err(|e| ApiError::internal("deleting the job's record", e))?;
    gw.jobs
        .publish_job_deleted(&JobDeleted {
            job_id,
            at: chrono::Utc::now(),
            by: who.user.clone(),
        })
        .await
        .map_err(|e| ApiError::internal("telling the audit store", e))?;
    gw.known.forget(&job_id);
    Ok(Deleted { deleted: job_id })
}
