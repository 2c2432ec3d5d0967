//! Jobs: submit, get and list, and finding a job a caller may read. Jobs no longer in
//! `tw_jobs` are read from the audit store, with the same ACL.

use super::{delayed, targets};
use crate::error::{ApiError, ErrorCode};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Permission, Principal};
use crate::ids::{IdempotencyKey, derive_id};
use crate::store_client::Stored;
use futures::StreamExt;
use taskwire_core::catalog::{check_command_name, validate_params};
use taskwire_core::jobs::JobStore;
use taskwire_core::wire::api::{GroupView, JobList, JobView, SubmitRequest, Submitted};
use taskwire_core::wire::history::{MAX_PAGE, STORE_JOBS_GET, STORE_JOBS_LIST};
use taskwire_core::wire::{
    JobPage, JobQuery, JobRecord, JobRef, JobSpec, JobState, StoredJob, Via,
};
use uuid::Uuid;

/// Submits `req` for `who`. A `not_before` more than a second ahead makes a delayed job (a
/// one-shot schedule of the caller); otherwise the jobs are submitted now (see
/// [`submit_now`]).
pub async fn submit(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    req: SubmitRequest,
    idem: Option<IdempotencyKey>,
) -> Result<Submitted, ApiError> {
    if let Some(at) = req.not_before
        && at > chrono::Utc::now() + chrono::Duration::seconds(1)
    {
        return delayed::create(gw, who, caller, req, at)
            .await
            .map(Submitted::Delayed);
    }
    crate::gateway::within_outage_wait(gw, submit_now(gw, who, caller, req, idem)).await
}

/// Submits `req` now for `who` (authenticated, or a schedule's owner): the run ACL, target
/// choice and parameter checks, the audit record, then the jobs. With `idem` the job ids
/// derive from it, so a retry names the same jobs and answers them.
pub async fn submit_now(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    req: SubmitRequest,
    idem: Option<IdempotencyKey>,
) -> Result<Submitted, ApiError> {
    let action = Action::JobsSubmit;
    let command = Some(req.command.clone());
    let refuse = async |e: ApiError| {
        gw.refuse(&who.user, action, command.clone(), e, caller)
            .await
    };
    if let Err(msg) = check_command_name(&req.command) {
        return Err(refuse(ApiError::invalid(msg)).await);
    }
    let decision = gw.acl.check_run(who, &req.command);
    if !decision.allowed {
        return Err(refuse(ApiError::new(ErrorCode::Forbidden, decision.reason)).await);
    }
    let instances = gw.instances().await?;
    let chosen = match targets::choose(&req, &instances) {
        Ok(t) => t,
        Err(e) => return Err(refuse(e).await),
    };
    // Validate against the schema the instances advertise (they validate again themselves).
    let schema = instances
        .iter()
        .flat_map(|i| i.catalog.iter())
        .find(|c| c.name == req.command)
        .map(|c| c.params.clone())
        .unwrap_or_default();
    if let Err(e) = validate_params(&schema, &req.params) {
        return Err(refuse(ApiError::new(ErrorCode::InvalidParams, e.to_string())).await);
    }

    let group_id = (chosen.len() > 1).then(|| derive_id(&who.user, idem.as_ref(), "group"));
    let now = chrono::Utc::now();
    let specs: Vec<JobSpec> = chosen
        .into_iter()
        .enumerate()
        .map(|(i, target)| {
            JobSpec::new(req.command.clone(), target, who.user.clone(), caller.via)
                .with_id(derive_id(&who.user, idem.as_ref(), &i.to_string()))
                .with_params(req.params.clone())
                .in_group(group_id)
                .queued_at(now)
        })
        .collect();

    // An idempotent retry answers the jobs of the first request. Without a key the ids are
    // new (UUIDv7), so there is nothing to look up.
    let mut records = Vec::new();
    let mut fresh = Vec::new();
    for spec in specs {
        let existing = match idem {
            Some(_) => gw
                .through_outage(|| gw.jobs.get(&spec.job_id))
                .await
                .map_err(|e| ApiError::internal("reading the job store", e))?,
            None => None,
        };
        match existing {
            Some((existing, _)) => {
                if caller.via == Via::Schedule && existing.cancelled_before_queued {
                    // a delayed job cancelled while its fire was on the way: nothing runs
                    return Err(refuse(cancelled_before(&existing)).await);
                }
                let same = existing.spec.command == spec.command
                    && existing.spec.params == spec.params
                    && existing.spec.target == spec.target;
                if !same {
                    return Err(refuse(ApiError::new(
                        ErrorCode::Conflict,
                        "this Idempotency-Key was already used for a different request; use a new key",
                    ))
                    .await);
                }
                if existing.state == JobState::Queued {
                    // The first request may have stopped before announcing or dispatching:
                    // both again (JetStream drops what it already stored).
                    gw.through_outage(|| gw.jobs.release(&existing))
                        .await
                        .map_err(|e| ApiError::internal("dispatching the job", e))?;
                }
                gw.known.note(&existing);
                records.push(existing);
            }
            None => match JobStore::queued_record(spec) {
                Ok(r) => fresh.push(r),
                Err(e) => return Err(refuse(ApiError::from_core("submitting the job", e)).await),
            },
        }
    }
    let ids: Vec<String> = fresh
        .iter()
        .chain(records.iter())
        .map(|r| r.spec.job_id.to_string())
        .collect();
    // The decision's audit event and the queued records are written at once: nothing is
    // dispatched (nothing can run) before both are stored.
    let audited = gw.audit(
        Some(&who.user),
        action,
        Some(format!("{} -> {}", req.command, ids.join(","))),
        true,
        &decision.reason,
        caller,
    );
    // A retried create that finds its own record (the first attempt stored it, its answer was
    // lost) made it: `undo` must remove it too.
    let created = futures::future::join_all(fresh.iter().map(|r| {
        let mut tried = false;
        gw.through_outage(move || {
            let again = std::mem::replace(&mut tried, true);
            async move { create(gw, r).await.map(|made| made || again) }
        })
    }));
    let (audited, created) = futures::join!(audited, created);
    if let Err(e) = audited {
        // Not audited: nothing may happen. The records made meanwhile were never dispatched.
        undo(gw, &fresh, &created).await;
        return Err(e);
    }
    if let Some(pos) = created.iter().position(Result::is_err) {
        undo(gw, &fresh, &created).await;
        let id = fresh[pos].spec.job_id;
        // a cancel that made the record between the check above and this submit
        if caller.via == Via::Schedule
            && let Ok(Some((r, _))) = gw.jobs.get(&id).await
            && r.cancelled_before_queued
        {
            return Err(cancelled_before(&r));
        }
        let e = created.into_iter().nth(pos).and_then(Result::err);
        return Err(match e {
            Some(e) => ApiError::from_core("submitting the job", e),
            None => ApiError::internal("submitting the job", "record not created"),
        });
    }
    futures::future::try_join_all(
        fresh
            .iter()
            .map(|r| gw.through_outage(|| gw.jobs.release(r))),
    )
    .await
    .map_err(|e| ApiError::from_core("submitting the job", e))?;
    for r in fresh {
        gw.known.note(&r);
        records.push(r);
    }
    records.sort_by_key(|r| r.spec.job_id);
    Ok(match group_id {
        Some(group_id) => Submitted::Group(GroupView {
            group_id,
            jobs: records,
        }),
        None => Submitted::One(records.remove(0)),
    })
}

/// Creates the queued record `r`: `true` when this call made it, `false` when an identical one
/// was there already (a concurrent retry under the same key), an error when another is.
async fn create(gw: &Gateway, r: &JobRecord) -> Result<bool, taskwire_core::Error> {
    if gw.jobs.create_new(r).await? {
        return Ok(true);
    }
    gw.jobs.create(r).await.map(|()| false)
}

/// Removes the queued records this submit made (`created` answers `fresh` one for one)
/// when it cannot go on: none was dispatched, so none can run. A record that cannot be
/// removed stays queued without a dispatch message, and the kill broker's reaper marks it
/// lost once `unclaimed_after` passes with no instance serving its channel.
async fn undo(gw: &Gateway, fresh: &[JobRecord], created: &[Result<bool, taskwire_core::Error>]) {
    for (r, c) in fresh.iter().zip(created) {
        if matches!(c, Ok(true))
            && let Err(e) = gw.topology.jobs.purge(r.spec.job_id.to_string()).await
        {
            tracing::warn!(job = %r.spec.job_id, error = %e, "cannot remove the record of a job that was not submitted");
        }
    }
}

/// The answer to a fire of a delayed job that was cancelled before its time.
fn cancelled_before(r: &JobRecord) -> ApiError {
    let by = r.ended_by.as_deref().unwrap_or("someone");
    ApiError::new(
        ErrorCode::Conflict,
        format!("job {} was cancelled by {by} before it ran", r.spec.job_id),
    )
}

/// `GET /api/v1/jobs/{id}`: a delayed job that waits for its time, or the job's record (live
/// while the job is) with what only the audit store keeps (argv, pid, memory, output size,
/// result, tree report).
pub async fn get(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    job_id: Uuid,
) -> Result<JobView, ApiError> {
    let action = Action::JobsGet;
    let live = live(gw, job_id).await?;
    // No record yet: a delayed job that waits for its time shows as such.
    if live.is_none()
        && let Some(waiting) = delayed::waiting_view(gw, job_id).await?
    {
        let d = gw.acl.check_job(
            who,
            &waiting.requested_by,
            Permission::ReadOwn,
            Permission::ReadAny,
        );
        gw.enforce(who, action, Some(job_id.to_string()), d, caller)
            .await?;
        return Ok(JobView::Scheduled(waiting));
    }
    let found = match live {
        Some(record) => Found::Live(record),
        None => stored_or_missing(gw, who, caller, action, job_id).await?,
    };
    let owner = found.record().spec.requested_by.clone();
    let d = gw
        .acl
        .check_job(who, &owner, Permission::ReadOwn, Permission::ReadAny);
    gw.enforce(who, action, Some(job_id.to_string()), d, caller)
        .await?;
    Ok(JobView::Job(Box::new(match found {
        Found::Stored(stored) => stored,
        Found::Live(record) => detail(gw, record).await,
    })))
}

/// Where a job's record was found.
enum Found {
    /// In `tw_jobs`: the job is live, or finished recently.
    Live(JobRecord),
    /// Only the audit store has it.
    Stored(StoredJob),
}

impl Found {
    fn record(&self) -> &JobRecord {
        match self {
            Found::Live(r) => r,
            Found::Stored(s) => &s.record,
        }
    }
}

/// The job's live record, while it is in `tw_jobs`.
pub async fn live(gw: &Gateway, job_id: Uuid) -> Result<Option<JobRecord>, ApiError> {
    let found = gw
        .through_outage(|| gw.jobs.get(&job_id))
        .await
        .map_err(|e| ApiError::internal("reading the job store", e))?
        .map(|(record, _)| record);
    match &found {
        Some(r) => gw.known.note(r),
        None => gw.known.forget(&job_id),
    }
    Ok(found)
}

/// The audit store's record of a job that is not live, or 404 (audited as `action`).
async fn stored_or_missing(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
    job_id: Uuid,
) -> Result<Found, ApiError> {
    match gw
        .history
        .ask::<StoredJob>(STORE_JOBS_GET, &JobRef { job_id })
        .await?
    {
        Stored::Found(s) => Ok(Found::Stored(s)),
        Stored::NotFound | Stored::NoStore => {
            gw.audit(
                Some(&who.user),
                action,
                Some(job_id.to_string()),
                false,
                "no such job",
                caller,
            )
            .await?;
            Err(ApiError::new(
                ErrorCode::NotFound,
                format!("job {job_id} does not exist"),
            ))
        }
    }
}

/// The job `job_id`: the live record while it is in `tw_jobs`, else the audit store's, or
/// 404 (audited as `action`). The caller's right to it is not checked.
async fn find_in(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
    job_id: Uuid,
) -> Result<Found, ApiError> {
    match live(gw, job_id).await? {
        Some(record) => Ok(Found::Live(record)),
        None => stored_or_missing(gw, who, caller, action, job_id).await,
    }
}

/// The record of job `job_id`, or 404 (audited as `action`); the caller's right to act on it
/// is checked by the caller.
pub async fn find(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
    job_id: Uuid,
) -> Result<JobRecord, ApiError> {
    Ok(match find_in(gw, who, caller, action, job_id).await? {
        Found::Live(r) => r,
        Found::Stored(s) => s.record,
    })
}

/// The record of a job whose owner this gateway knows (`None` when it does not), once `who`
/// may do `action` to it by the own/any pair `perms`: the decision needs only the owner, so
/// it is audited while the live record is read instead of after (a job no longer live is then
/// read from the audit store, without a second decision). A denial is audited and answered
/// 403, as by [`readable`].
pub async fn decided_known(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
    job_id: Uuid,
    (own, any): (Permission, Permission),
) -> Result<Option<JobRecord>, ApiError> {
    let Some(known) = gw.known.get(&job_id) else {
        return Ok(None);
    };
    let d = gw.acl.check_job(who, &known.owner, own, any);
    let (audited, record) = futures::join!(
        gw.enforce(who, action, Some(job_id.to_string()), d, caller),
        live(gw, job_id)
    );
    audited?;
    Ok(Some(match record? {
        Some(r) => r,
        None => match stored_or_missing(gw, who, caller, action, job_id).await? {
            Found::Stored(s) => s.record,
            Found::Live(r) => r,
        },
    }))
}

/// The record of job `job_id` once `who` may read it (`read_own` / `read_any`; audited as
/// `action`).
pub async fn readable(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
    job_id: Uuid,
) -> Result<JobRecord, ApiError> {
    let record = find(gw, who, caller, action, job_id).await?;
    let d = gw.acl.check_job(
        who,
        &record.spec.requested_by,
        Permission::ReadOwn,
        Permission::ReadAny,
    );
    gw.enforce(who, action, Some(job_id.to_string()), d, caller)
        .await?;
    Ok(record)
}

/// `record` (live) with what only the audit store keeps, when it has the job. A store that
/// cannot answer now only leaves those fields out: the live record is the current word.
async fn detail(gw: &Gateway, record: JobRecord) -> StoredJob {
    let job_id = record.spec.job_id;
    match gw
        .history
        .ask::<StoredJob>(STORE_JOBS_GET, &JobRef { job_id })
        .await
    {
        Ok(Stored::Found(stored)) => StoredJob { record, ..stored },
        Ok(Stored::NotFound | Stored::NoStore) => StoredJob::live(record),
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e.message, "the audit store did not answer; the live record alone is shown");
            StoredJob::live(record)
        }
    }
}

/// Whose jobs a listing may show: everyone's (`read_any`), or only the caller's own
/// (`read_own`). The decision is audited as `action`; neither permission is refused.
pub async fn read_scope(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
) -> Result<bool, ApiError> {
    let (d, any) = gw.acl.read_scope(who);
    gw.enforce(who, action, None, d, caller).await?;
    Ok(any)
}

/// Jobs `who` may read, newest first: the audit store's history with live state laid over
/// it, or (no audit writer running) the live jobs in `tw_jobs`. The first page also lists
/// the delayed jobs still waiting.
pub async fn list(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    filter: JobQuery,
) -> Result<JobList, ApiError> {
    let any = read_scope(gw, who, caller, Action::JobsList).await?;
    let first_page = filter.cursor.is_none()
        && filter.state.is_none()
        && filter.instance.is_none()
        && filter.since.is_none()
        && filter.until.is_none();
    let mut q = JobQuery {
        limit: Some(filter.limit.unwrap_or(50).clamp(1, MAX_PAGE)),
        ..filter
    };
    if !any {
        match &q.user {
            Some(u) if *u != who.user => {
                return Ok(JobList {
                    jobs: Vec::new(),
                    next: None,
                    scheduled: Vec::new(),
                });
            }
            _ => q.user = Some(who.user.clone()),
        }
    }
    let mut list = match gw.history.ask::<JobPage>(STORE_JOBS_LIST, &q).await? {
        Stored::Found(page) => {
            let mut jobs = page.jobs;
            for j in &mut jobs {
                if !j.record.state.is_terminal()
                    && let Ok(Some((live, _))) = gw.jobs.get(&j.record.spec.job_id).await
                {
                    j.record = live;
                }
            }
            JobList {
                jobs,
                next: page.next,
                scheduled: Vec::new(),
            }
        }
        Stored::NotFound | Stored::NoStore => live_jobs(gw, &q).await?,
    };
    if first_page {
        list.scheduled = delayed::waiting(gw, q.user.as_deref(), q.command.as_deref()).await?;
    }
    Ok(list)
}

/// The live jobs in `tw_jobs` matching `q` (cursor: the last job id of the previous page).
async fn live_jobs(gw: &Gateway, q: &JobQuery) -> Result<JobList, ApiError> {
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
            ApiError::invalid(format!(
                "cursor '{c}' is not one this API handed out; start again without it"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(50) as usize;
    let mut keys = gw
        .topology
        .jobs
        .keys()
        .await
        .map_err(|e| ApiError::internal("listing jobs", e))?;
    let mut ids = Vec::new();
    while let Some(k) = keys.next().await {
        if let Ok(k) = k
            && let Ok(id) = Uuid::parse_str(&k)
            && before.is_none_or(|b| id < b)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let mut jobs: Vec<StoredJob> = Vec::new();
    let mut next = None;
    for id in ids {
        let Ok(Some((r, _))) = gw.jobs.get(&id).await else {
            continue;
        };
        if q.user.as_ref().is_some_and(|u| *u != r.spec.requested_by)
            || q.state.is_some_and(|s| s != r.state)
            || q.command.as_ref().is_some_and(|c| *c != r.spec.command)
            || q.instance.is_some_and(|g| r.instance != Some(g))
            || q.since.is_some_and(|t| r.spec.queued_at < t)
            || q.until.is_some_and(|t| r.spec.queued_at >= t)
        {
            continue;
        }
        if jobs.len() == limit {
            next = jobs.last().map(|j| j.record.spec.job_id.to_string());
            break;
        }
        jobs.push(StoredJob::live(r));
    }
    Ok(JobList {
        jobs,
        next,
        scheduled: Vec::new(),
    })
}
