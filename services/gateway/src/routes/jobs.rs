//! `POST /api/v1/jobs`, `GET /api/v1/jobs`, `GET /api/v1/jobs/{id}`. Jobs no longer in
//! `tw_jobs` are read from the audit store, with the same ACL.

use crate::acl::Permission;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::history::{self, Stored};
use crate::state::{AppState, Caller};
use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use taskwire_core::catalog::{check_command_name, validate_params};
use taskwire_core::wire::history::{MAX_PAGE, STORE_JOBS_GET, STORE_JOBS_LIST};
use taskwire_core::wire::{
    InstanceInfo, InstanceStatus, JobPage, JobQuery, JobRecord, JobRef, JobSpec, JobState,
    StoredJob, Target, Timing, Via,
};
use uuid::Uuid;

/// The body of `POST /api/v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub command: String,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// Any instance serving this channel (default `default`).
    pub channel: Option<String>,
    /// Exactly this instance.
    pub instance: Option<Uuid>,
    /// One job on every instance offering the command.
    #[serde(default)]
    pub all_instances: bool,
    /// One job on every instance whose labels include all of these.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Run at (not before) this instant: the request becomes a one-shot schedule of the
    /// caller and the job shows as `scheduled` until it is queued.
    #[serde(default)]
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// The answer to a submit that fanned out to several instances.
#[derive(Debug, Serialize)]
pub struct GroupView {
    pub group_id: Uuid,
    pub jobs: Vec<JobRecord>,
}

const ACTION: &str = "jobs.submit";

pub async fn submit(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    submit_as(&st, &headers, &Caller::http(addr), &body)
        .await
        .map(|v| (StatusCode::ACCEPTED, Json(v)))
}

/// Submits a job request from any door (HTTP or the NATS API).
pub async fn submit_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    body: &[u8],
) -> Result<Value, ApiError> {
    let caller = caller.clone();
    let headers = headers.clone();
    let who = st.authenticate(&headers, &caller, ACTION).await?;
    let req: SubmitRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!(
                "the request body is not a valid job request: {e}. Send JSON like {{\"command\": \"hello\", \"params\": {{}}}}"
            );
            st.audit_malformed(Some(&who.user), ACTION, &msg, &caller)
                .await?;
            return Err(ApiError::new(ErrorCode::InvalidRequest, msg));
        }
    };
    let idem = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(msg) => {
            st.audit_malformed(Some(&who.user), ACTION, &msg, &caller)
                .await?;
            return Err(ApiError::new(ErrorCode::InvalidRequest, msg));
        }
    };
    if let Some(at) = req.not_before
        && at > chrono::Utc::now() + chrono::Duration::seconds(1)
    {
        return super::schedules::delay(st, &who, &caller, req, at).await;
    }
    submit_for(st, &who, &caller, req, idem).await
}

/// Submits `req` for `who` (authenticated, or a schedule's owner): the run ACL, target choice
/// and parameter checks, the audit record, then the jobs. With `idem` the job ids derive from
/// it, so a retry names the same jobs.
pub async fn submit_for(
    st: &AppState,
    who: &crate::auth::Principal,
    caller: &Caller,
    req: SubmitRequest,
    idem: Option<String>,
) -> Result<Value, ApiError> {
    let command = req.command.clone();
    let deny = async |code: ErrorCode, reason: String| -> ApiError {
        if let Err(e) = st
            .audit(
                Some(&who.user),
                ACTION,
                Some(command.clone()),
                false,
                &reason,
                caller,
            )
            .await
        {
            return e;
        }
        ApiError::new(code, reason)
    };
    if let Err(msg) = check_command_name(&req.command) {
        return Err(deny(ErrorCode::InvalidRequest, msg).await);
    }
    let decision = st.acl.check_run(who, &req.command);
    if !decision.allowed {
        return Err(deny(ErrorCode::Forbidden, decision.reason).await);
    }
    let instances = super::system::registry(st).await?;
    let targets = match choose_targets(&req, &instances) {
        Ok(t) => t,
        Err((code, msg)) => return Err(deny(code, msg).await),
    };
    // Validate against the schema the instances advertise (they validate again themselves).
    let spec_params = instances
        .iter()
        .flat_map(|i| i.catalog.iter())
        .find(|c| c.name == req.command)
        .map(|c| c.params.clone())
        .unwrap_or_default();
    if let Err(e) = validate_params(&spec_params, &req.params) {
        return Err(deny(ErrorCode::InvalidParams, e.to_string()).await);
    }

    let group_id = (targets.len() > 1).then(|| derive_id(&who.user, idem.as_deref(), "group"));
    let now = chrono::Utc::now();
    let specs: Vec<JobSpec> = targets
        .into_iter()
        .enumerate()
        .map(|(i, target)| JobSpec {
            job_id: derive_id(&who.user, idem.as_deref(), &i.to_string()),
            command: req.command.clone(),
            params: req.params.clone(),
            target,
            requested_by: who.user.clone(),
            via: caller.via,
            queued_at: now,
            attempt: 1,
            group_id,
            retry_of: None,
        })
        .collect();

    // An idempotent retry returns the jobs of the first request.
    let mut records = Vec::new();
    let mut fresh = Vec::new();
    for spec in specs {
        match st.store.get(&spec.job_id).await {
            Ok(Some((existing, _))) => {
                if caller.via == Via::Schedule && super::control::cancelled_before_run(&existing) {
                    // a delayed job cancelled while its fire was on the way: nothing runs
                    return Err(deny(ErrorCode::Conflict, cancelled_note(&existing)).await);
                }
                let same = existing.spec.command == spec.command
                    && existing.spec.params == spec.params
                    && existing.spec.target == spec.target;
                if !same {
                    return Err(deny(
                        ErrorCode::Conflict,
                        "this Idempotency-Key was already used for a different request; use a new key".into(),
                    )
                    .await);
                }
                if existing.state == JobState::Queued {
                    // The first request may have stopped before dispatching: dispatch again
                    // (JetStream drops the duplicate if it did not).
                    st.store
                        .dispatch(&existing.spec)
                        .await
                        .map_err(|e| ApiError::internal("dispatching the job", e))?;
                }
                records.push(existing);
            }
            Ok(None) => fresh.push(spec),
            Err(e) => return Err(ApiError::internal("reading the job store", e)),
        }
    }
    let ids: Vec<String> = fresh
        .iter()
        .chain(records.iter().map(|r| &r.spec))
        .map(|s| s.job_id.to_string())
        .collect();
    st.audit(
        Some(&who.user),
        ACTION,
        Some(format!("{} -> {}", req.command, ids.join(","))),
        true,
        &decision.reason,
        caller,
    )
    .await?;
    for spec in fresh {
        let id = spec.job_id;
        let rec = match st.store.submit(spec).await {
            Ok(rec) => rec,
            Err(e) => {
                // a cancel that made the record between the check above and this submit
                if let Ok(Some((r, _))) = st.store.get(&id).await
                    && caller.via == Via::Schedule
                    && super::control::cancelled_before_run(&r)
                {
                    return Err(ApiError::new(ErrorCode::Conflict, cancelled_note(&r)));
                }
                return Err(ApiError::internal("submitting the job", e));
            }
        };
        records.push(rec);
    }
    records.sort_by_key(|r| r.spec.job_id);
    let body = match group_id {
        Some(group_id) => serde_json::to_value(GroupView {
            group_id,
            jobs: records,
        }),
        None => serde_json::to_value(&records[0]),
    }
    .map_err(|e| ApiError::internal("encoding the answer", e))?;
    Ok(body)
}

fn cancelled_note(r: &JobRecord) -> String {
    let by = r.ended_by.as_deref().unwrap_or("someone");
    format!("job {} was cancelled by {by} before it ran", r.spec.job_id)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .map_err(|_| "Idempotency-Key must be printable ASCII".to_string())?;
    if k.is_empty() || k.len() > 128 {
        return Err("Idempotency-Key must be 1 to 128 characters".into());
    }
    Ok(Some(k.to_string()))
}

/// A job id: random (time-ordered v7) without an idempotency key; derived from the user and
/// the key with one, so a retried request names the same jobs.
pub(crate) fn derive_id(user: &str, key: Option<&str>, part: &str) -> Uuid {
    match key {
        None => Uuid::now_v7(),
        Some(k) => {
            let h = Sha256::new()
                .chain_update(user.as_bytes())
                .chain_update([0])
                .chain_update(k.as_bytes())
                .chain_update([0])
                .chain_update(part.as_bytes())
                .finalize();
            let mut b = [0u8; 16];
            b.copy_from_slice(&h[..16]);
            uuid::Builder::from_custom_bytes(b).into_uuid()
        }
    }
}

type Refusal = (ErrorCode, String);

fn choose_targets(req: &SubmitRequest, instances: &[InstanceInfo]) -> Result<Vec<Target>, Refusal> {
    let given = [
        req.channel.is_some(),
        req.instance.is_some(),
        req.all_instances,
        !req.labels.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given > 1 {
        return Err((
            ErrorCode::InvalidRequest,
            "give at most one target: channel, instance, all_instances or labels".into(),
        ));
    }
    let offering: Vec<&InstanceInfo> = instances
        .iter()
        .filter(|i| i.status == InstanceStatus::Serving)
        .filter(|i| i.catalog.iter().any(|c| c.name == req.command))
        .collect();
    if offering.is_empty() {
        let mut names: Vec<&str> = instances
            .iter()
            .flat_map(|i| i.catalog.iter().map(|c| c.name.as_str()))
            .collect();
        names.sort();
        names.dedup();
        return Err((
            ErrorCode::NoInstance,
            format!(
                "no serving instance offers command '{}'{}",
                req.command,
                if names.is_empty() {
                    "; no instance is registered at all".to_string()
                } else {
                    format!("; offered commands: {}", names.join(", "))
                }
            ),
        ));
    }
    if let Some(g) = req.instance {
        return if offering.iter().any(|i| i.guid == g) {
            Ok(vec![Target::Instance(g)])
        } else {
            Err((
                ErrorCode::NoInstance,
                format!(
                    "instance {g} is not serving or does not offer '{}'",
                    req.command
                ),
            ))
        };
    }
    if req.all_instances {
        return Ok(offering.iter().map(|i| Target::Instance(i.guid)).collect());
    }
    if !req.labels.is_empty() {
        let matching: Vec<Target> = offering
            .iter()
            .filter(|i| req.labels.iter().all(|(k, v)| i.labels.get(k) == Some(v)))
            .map(|i| Target::Instance(i.guid))
            .collect();
        return if matching.is_empty() {
            Err((
                ErrorCode::NoInstance,
                format!(
                    "no serving instance offering '{}' has all of the labels given",
                    req.command
                ),
            ))
        } else {
            Ok(matching)
        };
    }
    let channel = req.channel.clone().unwrap_or_else(|| "default".into());
    let runs_there = offering.iter().any(|i| {
        i.catalog
            .iter()
            .any(|c| c.name == req.command && c.channels.contains(&channel))
    });
    if runs_there {
        Ok(vec![Target::Channel(channel)])
    } else {
        Err((
            ErrorCode::NoInstance,
            format!(
                "no serving instance runs '{}' on channel '{channel}'",
                req.command
            ),
        ))
    }
}

/// Authenticates the caller and finds the job named by `id` (a malformed id or a missing job
/// is audited and answered 400 or 404). The caller's right to it is checked by the caller.
pub async fn find_job(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    action: &str,
    id: &str,
) -> Result<(crate::auth::Principal, JobRecord), ApiError> {
    let who = st.authenticate(headers, caller, action).await?;
    let Ok(job_id) = Uuid::parse_str(id) else {
        let msg = format!(
            "'{}' is not a job id (a UUID)",
            id.chars().take(64).collect::<String>()
        );
        st.audit_malformed(Some(&who.user), action, &msg, caller)
            .await?;
        return Err(ApiError::new(ErrorCode::InvalidRequest, msg));
    };
    let Some(record) = lookup(st, job_id).await? else {
        st.audit(
            Some(&who.user),
            action,
            Some(id.to_string()),
            false,
            "no such job",
            caller,
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("job {job_id} does not exist"),
        ));
    };
    Ok((who, record))
}

/// A job's record: the live one while the job is in `tw_jobs`, else the audit store's.
pub async fn lookup(st: &AppState, job_id: Uuid) -> Result<Option<JobRecord>, ApiError> {
    let live = st
        .store
        .get(&job_id)
        .await
        .map_err(|e| ApiError::internal("reading the job store", e))?;
    if let Some((record, _)) = live {
        return Ok(Some(record));
    }
    match history::ask::<StoredJob>(st, STORE_JOBS_GET, &JobRef { job_id }).await? {
        Stored::Found(s) => Ok(Some(s.record)),
        Stored::NotFound | Stored::NoStore => Ok(None),
    }
}

/// Reads a job's record and checks the caller may see it (audited).
pub async fn load_job(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    action: &str,
    id: &str,
) -> Result<JobRecord, ApiError> {
    let (who, record) = find_job(st, headers, caller, action, id).await?;
    let d = st.acl.check_job(
        &who,
        &record.spec.requested_by,
        Permission::ReadOwn,
        Permission::ReadAny,
    );
    st.enforce(&who, action, Some(id.to_string()), d, caller)
        .await?;
    Ok(record)
}

/// `GET /api/v1/jobs/{id}`: the record (live while the job is), with what only the audit
/// store keeps (argv, pid, memory, output size, result, tree report) when it has the job.
pub async fn get_one(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = Caller::http(addr);
    if let Some(v) = scheduled(&st, &headers, &caller, &id).await? {
        return Ok(Json(v));
    }
    let record = load_job(&st, &headers, &caller, "jobs.get", &id).await?;
    detail(&st, record).await.map(Json)
}

/// A delayed job that waits for its time (`state: scheduled`), when `id` names one and the
/// caller may read it.
pub async fn scheduled(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
) -> Result<Option<Value>, ApiError> {
    let Ok(job_id) = Uuid::parse_str(id) else {
        return Ok(None);
    };
    if st
        .store
        .get(&job_id)
        .await
        .map_err(|e| ApiError::internal("reading the job store", e))?
        .is_some()
    {
        return Ok(None);
    }
    let Some(s) = super::schedules::delayed(st, job_id).await? else {
        return Ok(None);
    };
    let who = st.authenticate(headers, caller, "jobs.get").await?;
    let d = st
        .acl
        .check_job(&who, &s.owner, Permission::ReadOwn, Permission::ReadAny);
    st.enforce(&who, "jobs.get", Some(id.to_string()), d, caller)
        .await?;
    Ok(Some(super::schedules::scheduled_view(&s)))
}

/// `record` as JSON, with the store's extra fields added (the live record wins where both
/// have a field).
pub async fn detail(st: &AppState, record: JobRecord) -> Result<Value, ApiError> {
    let job_id = record.spec.job_id;
    let mut v =
        serde_json::to_value(&record).map_err(|e| ApiError::internal("encoding the job", e))?;
    if let Stored::Found(stored) =
        history::ask::<StoredJob>(st, STORE_JOBS_GET, &JobRef { job_id }).await?
        && let (Value::Object(live), Ok(Value::Object(more))) =
            (&mut v, serde_json::to_value(&stored))
    {
        for (k, val) in more {
            live.entry(k).or_insert(val);
        }
    }
    Ok(v)
}

/// Filters of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub state: Option<JobState>,
    pub command: Option<String>,
    pub user: Option<String>,
    pub instance: Option<Uuid>,
    /// Jobs queued at or after this instant (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Jobs queued before this instant (RFC 3339).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct JobList {
    pub jobs: Vec<StoredJob>,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Delayed jobs still waiting for their time (first page only, and only without filters
    /// on state, instance or time), soonest first, as `GET /jobs/{id}` shows them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scheduled: Vec<Value>,
}

/// Jobs the caller may read, newest first: the audit store's history with live state laid
/// over it, or (no audit writer running) the live jobs in `tw_jobs`.
pub async fn list(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let q = query.map(|Query(q)| q).map_err(|e| e.to_string());
    list_as(&st, &headers, &Caller::http(addr), q)
        .await
        .map(Json)
}

/// The job list for any door (`q`: the filters, or why they could not be read).
pub async fn list_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    q: Result<ListQuery, String>,
) -> Result<JobList, ApiError> {
    let who = st.authenticate(headers, caller, "jobs.list").await?;
    let q = match q {
        Ok(q) => q,
        Err(e) => {
            let msg = format!("invalid filters: {e}");
            st.audit_malformed(Some(&who.user), "jobs.list", &msg, caller)
                .await?;
            return Err(ApiError::new(ErrorCode::InvalidRequest, msg));
        }
    };
    let any = read_scope(st, &who, caller, "jobs.list").await?.any;
    let mut hq = JobQuery {
        user: q.user.clone(),
        command: q.command.clone(),
        state: q.state,
        instance: q.instance,
        since: q.since,
        until: q.until,
        cursor: q.cursor.clone(),
        limit: Some(q.limit.unwrap_or(50).clamp(1, MAX_PAGE)),
    };
    if !any {
        match &hq.user {
            Some(u) if *u != who.user => {
                return Ok(JobList {
                    jobs: Vec::new(),
                    next: None,
                    scheduled: Vec::new(),
                });
            }
            _ => hq.user = Some(who.user.clone()),
        }
    }
    let first_page = q.cursor.is_none()
        && q.state.is_none()
        && q.instance.is_none()
        && q.since.is_none()
        && q.until.is_none();
    let mut list = match history::ask::<JobPage>(st, STORE_JOBS_LIST, &hq).await? {
        Stored::Found(page) => {
            let mut jobs = page.jobs;
            for j in &mut jobs {
                if !j.record.state.is_terminal()
                    && let Ok(Some((live, _))) = st.store.get(&j.record.spec.job_id).await
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
        Stored::NotFound | Stored::NoStore => live_jobs(st, &hq).await?,
    };
    if first_page {
        list.scheduled = waiting(st, &hq).await?;
    }
    Ok(list)
}

/// Delayed jobs not yet queued, of `q.user` (all users when `None`) and `q.command`.
async fn waiting(st: &AppState, q: &JobQuery) -> Result<Vec<Value>, ApiError> {
    let all = st
        .schedules
        .list()
        .await
        .map_err(|e| ApiError::internal("reading the schedules", e))?;
    let mut out = Vec::new();
    for s in all {
        let Some(job_id) = s.job_id else { continue };
        if q.user.as_ref().is_some_and(|u| *u != s.owner)
            || q.command.as_ref().is_some_and(|c| *c != s.command)
        {
            continue;
        }
        if !super::schedules::waits(st, &s).await? {
            continue;
        }
        let queued = st
            .store
            .get(&job_id)
            .await
            .map_err(|e| ApiError::internal("reading the job store", e))?;
        if queued.is_none() {
            let at = match s.timing {
                Timing::Once { at } => Some(at),
                _ => None,
            };
            out.push((at, super::schedules::scheduled_view(&s)));
        }
    }
    // soonest first, by instant (their texts need not sort alike)
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// Which jobs a listing may show.
pub struct ReadScope {
    /// Everyone's (`read_any`); otherwise only the caller's own (`read_own`).
    pub any: bool,
}

/// Records and enforces the caller's right to list jobs: `read_any` for all, `read_own` for
/// one's own, neither refused.
pub async fn read_scope(
    st: &AppState,
    who: &Principal,
    caller: &Caller,
    action: &str,
) -> Result<ReadScope, ApiError> {
    let any = st.acl.check(who, Permission::ReadAny);
    let own = st.acl.check(who, Permission::ReadOwn);
    let allowed = any.allowed || own.allowed;
    let reason = if any.allowed {
        any.reason
    } else if own.allowed {
        format!("{} (own jobs only)", own.reason)
    } else {
        own.reason
    };
    st.audit(Some(&who.user), action, None, allowed, &reason, caller)
        .await?;
    if !allowed {
        return Err(ApiError::new(ErrorCode::Forbidden, reason));
    }
    Ok(ReadScope { any: any.allowed })
}

/// The live jobs in `tw_jobs` matching `q` (cursor: the last job id of the previous page).
async fn live_jobs(st: &AppState, q: &JobQuery) -> Result<JobList, ApiError> {
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("cursor '{c}' is not one this API handed out; start again without it"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(50) as usize;
    let mut keys = st
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
        let Ok(Some((r, _))) = st.store.get(&id).await else {
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
