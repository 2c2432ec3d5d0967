//! `POST /api/v1/jobs`, `GET /api/v1/jobs`, `GET /api/v1/jobs/{id}`.

use crate::acl::Permission;
use crate::error::{ApiError, ErrorCode};
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
use taskwire_core::wire::{InstanceInfo, InstanceStatus, JobRecord, JobSpec, JobState, Target};
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
    let command = req.command.clone();
    let deny = async |code: ErrorCode, reason: String| -> ApiError {
        if let Err(e) = st
            .audit(
                Some(&who.user),
                ACTION,
                Some(command.clone()),
                false,
                &reason,
                &caller,
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
    let decision = st.acl.check_run(&who, &req.command);
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
        &caller,
    )
    .await?;
    for spec in fresh {
        let rec = st
            .store
            .submit(spec)
            .await
            .map_err(|e| ApiError::internal("submitting the job", e))?;
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
fn derive_id(user: &str, key: Option<&str>, part: &str) -> Uuid {
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
    let record = st
        .store
        .get(&job_id)
        .await
        .map_err(|e| ApiError::internal("reading the job store", e))?;
    let Some((record, _)) = record else {
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
    st.audit(
        Some(&who.user),
        action,
        Some(id.to_string()),
        d.allowed,
        &d.reason,
        caller,
    )
    .await?;
    if !d.allowed {
        return Err(ApiError::new(ErrorCode::Forbidden, d.reason));
    }
    Ok(record)
}

pub async fn get_one(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let caller = Caller::http(addr);
    load_job(&st, &headers, &caller, "jobs.get", &id)
        .await
        .map(Json)
}

/// Filters of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub state: Option<JobState>,
    pub command: Option<String>,
    pub user: Option<String>,
    pub instance: Option<Uuid>,
    /// Only jobs older than this job id (for paging).
    pub before: Option<Uuid>,
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct JobList {
    pub jobs: Vec<JobRecord>,
    /// Pass as `before` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Uuid>,
}

/// Live jobs (those still in the `tw_jobs` bucket), newest first, that the caller may read.
pub async fn list(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let caller = Caller::http(addr);
    let who = st.authenticate(&headers, &caller, "jobs.list").await?;
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            let msg = format!("invalid filters: {e}");
            st.audit_malformed(Some(&who.user), "jobs.list", &msg, &caller)
                .await?;
            return Err(ApiError::new(ErrorCode::InvalidRequest, msg));
        }
    };
    let any = st.acl.check(&who, Permission::ReadAny);
    let own = st.acl.check(&who, Permission::ReadOwn);
    let allowed = any.allowed || own.allowed;
    let reason = if any.allowed {
        any.reason
    } else if own.allowed {
        format!("{} (own jobs only)", own.reason)
    } else {
        own.reason
    };
    st.audit(
        Some(&who.user),
        "jobs.list",
        None,
        allowed,
        &reason,
        &caller,
    )
    .await?;
    if !allowed {
        return Err(ApiError::new(ErrorCode::Forbidden, reason));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
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
            && q.before.is_none_or(|b| id < b)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let mut jobs = Vec::new();
    let mut next = None;
    for id in ids {
        let Ok(Some((r, _))) = st.store.get(&id).await else {
            continue;
        };
        if !any.allowed && r.spec.requested_by != who.user {
            continue;
        }
        if q.state.is_some_and(|s| s != r.state)
            || q.command.as_ref().is_some_and(|c| *c != r.spec.command)
            || q.user.as_ref().is_some_and(|u| *u != r.spec.requested_by)
            || q.instance.is_some_and(|g| r.instance != Some(g))
        {
            continue;
        }
        if jobs.len() == limit {
            next = jobs.last().map(|j: &JobRecord| j.spec.job_id);
            break;
        }
        jobs.push(r);
    }
    Ok(Json(JobList { jobs, next }))
}
