//! Schedules: `GET/POST /api/v1/schedules`, `GET/PATCH/DELETE /api/v1/schedules/{id}`,
//! `POST .../pause|resume`, `GET .../history`, `POST /api/v1/schedules/preview`, the NATS API's
//! `schedules.*`, and delayed jobs (`POST /api/v1/jobs` with `not_before`). Managing schedules
//! needs `manage_schedules` (one's own; super users manage all); every change is audited.

use super::jobs::{SubmitRequest, derive_id};
use crate::acl::Permission;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, Caller};
use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use taskwire_core::catalog::{check_command_name, validate_params};
use taskwire_core::schedule::Plan;
use taskwire_core::wire::{Misfire, Overlap, Schedule, ScheduleTarget, Timing};
use uuid::Uuid;

/// How many upcoming fires a schedule's view shows.
const PREVIEW: usize = 5;
/// The largest jitter a schedule may ask for.
const MAX_JITTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// The body of a create or a change (every field optional in a change).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    pub name: Option<String>,
    pub command: Option<String>,
    pub params: Option<BTreeMap<String, Value>>,
    pub channel: Option<String>,
    pub instance: Option<Uuid>,
    pub all_instances: Option<bool>,
    pub labels: Option<BTreeMap<String, String>>,
    /// `cron`, `once` or `interval`.
    pub kind: Option<String>,
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub at: Option<DateTime<Utc>>,
    pub every: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub enabled: Option<bool>,
    pub overlap: Option<Overlap>,
    pub misfire: Option<Misfire>,
    pub jitter: Option<String>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, msg)
}

/// The timing `input` asks for, merged over `old`; `None` when it does not touch the timing.
fn timing(input: &ScheduleInput, old: Option<&Timing>) -> Result<Option<Timing>, String> {
    let touches = input.kind.is_some()
        || input.cron.is_some()
        || input.time_zone.is_some()
        || input.at.is_some()
        || input.every.is_some()
        || input.start.is_some();
    if !touches {
        return Ok(None);
    }
    let old_kind = match old {
        Some(Timing::Cron { .. }) => Some("cron"),
        Some(Timing::Once { .. }) => Some("once"),
        Some(Timing::Interval { .. }) => Some("interval"),
        None => None,
    };
    let kind = input.kind.as_deref().or(old_kind).ok_or(
        "say when it fires: kind 'cron' (with cron and time_zone), 'once' (with at) or 'interval' (with every)",
    )?;
    let same = old_kind == Some(kind);
    Ok(Some(match kind {
        "cron" => {
            let (old_cron, old_tz) = match (same, old) {
                (true, Some(Timing::Cron { cron, time_zone })) => {
                    (Some(cron.clone()), Some(time_zone.clone()))
                }
                _ => (None, None),
            };
            Timing::Cron {
                cron: input.cron.clone().or(old_cron).ok_or("a cron schedule needs 'cron', e.g. \"0 30 2 * * *\" (second minute hour day month weekday)")?,
                time_zone: input.time_zone.clone().or(old_tz).unwrap_or_else(|| "UTC".into()),
            }
        }
        "once" => {
            let old_at = match (same, old) {
                (true, Some(Timing::Once { at })) => Some(*at),
                _ => None,
            };
            Timing::Once {
                at: input
                    .at
                    .or(old_at)
                    .ok_or("a one-shot schedule needs 'at', an RFC 3339 instant")?,
            }
        }
        "interval" => {
            let (old_every, old_start) = match (same, old) {
                (true, Some(Timing::Interval { every, start })) => (Some(*every), *start),
                _ => (None, None),
            };
            let every = match &input.every {
                Some(e) => {
                    taskwire_core::units::parse_duration(e).map_err(|e| format!("every: {e}"))?
                }
                None => old_every
                    .ok_or("an interval schedule needs 'every', e.g. \"90s\" or \"15m\"")?,
            };
            Timing::Interval {
                every,
                start: input.start.or(old_start),
            }
        }
        other => {
            return Err(format!(
                "kind '{other}' is not known; use cron, once or interval"
            ));
        }
    }))
}

/// The target `input` asks for, merged over `old`.
fn target(input: &ScheduleInput, old: &ScheduleTarget) -> Result<ScheduleTarget, String> {
    let touches = input.channel.is_some()
        || input.instance.is_some()
        || input.all_instances.is_some()
        || input.labels.is_some();
    if !touches {
        return Ok(old.clone());
    }
    let t = ScheduleTarget {
        channel: input.channel.clone(),
        instance: input.instance,
        all_instances: input.all_instances.unwrap_or(false),
        labels: input.labels.clone().unwrap_or_default(),
    };
    let given = [
        t.channel.is_some(),
        t.instance.is_some(),
        t.all_instances,
        !t.labels.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given > 1 {
        return Err("give at most one target: channel, instance, all_instances or labels".into());
    }
    if let Some(c) = &t.channel {
        taskwire_core::names::check_token("channel", c).map_err(|e| e.to_string())?;
    }
    Ok(t)
}

/// Checks and applies `input` to `s` (a new schedule or a copy of a stored one).
async fn apply(
    st: &AppState,
    who: &Principal,
    s: &mut Schedule,
    input: &ScheduleInput,
    creating: bool,
) -> Result<(), ApiError> {
    let now = Utc::now();
    if let Some(n) = &input.name {
        if n.chars().count() > 100 || n.chars().any(char::is_control) {
            return Err(bad("name: at most 100 characters, no control characters"));
        }
        s.name = n.clone();
    }
    if let Some(c) = &input.command {
        check_command_name(c).map_err(bad)?;
        s.command = c.clone();
    }
    if let Some(p) = &input.params {
        s.params = p.clone();
    }
    s.target = target(input, &s.target).map_err(bad)?;
    if let Some(t) = timing(input, if creating { None } else { Some(&s.timing) }).map_err(bad)? {
        s.timing = t;
        s.active_since = now;
    } else if creating {
        return Err(bad(
            "say when it fires: kind 'cron' (with cron and time_zone), 'once' (with at) or 'interval' (with every)",
        ));
    }
    if let Some(e) = input.enabled {
        if e && !s.enabled {
            s.active_since = now;
        }
        s.enabled = e;
    }
    if let Some(o) = input.overlap {
        s.overlap = o;
    }
    if let Some(m) = input.misfire {
        s.misfire = m;
    }
    if let Some(j) = &input.jitter {
        let j = taskwire_core::units::parse_duration(j).map_err(|e| bad(format!("jitter: {e}")))?;
        if j > MAX_JITTER {
            return Err(bad("jitter: at most 1h"));
        }
        s.jitter = (!j.is_zero()).then_some(j);
    }
    let plan = Plan::of(s).map_err(bad)?;
    if creating
        && let Timing::Once { at } = &s.timing
        && *at <= now
    {
        return Err(bad(format!(
            "'at' ({at}) has already passed; give a future instant"
        )));
    }
    let _ = plan;
    // The owner must be allowed to run the command now (and is checked again at every fire).
    let d = st.acl.check_run(who, &s.command);
    if !d.allowed {
        return Err(ApiError::new(ErrorCode::Forbidden, d.reason));
    }
    // Parameters are checked against the schema the instances advertise, when one does.
    let instances = super::system::registry(st).await?;
    if let Some(c) = instances
        .iter()
        .flat_map(|i| i.catalog.iter())
        .find(|c| c.name == s.command)
    {
        validate_params(&c.params, &s.params)
            .map_err(|e| ApiError::new(ErrorCode::InvalidParams, e.to_string()))?;
    }
    s.updated_at = now;
    Ok(())
}

/// A schedule as the API shows it: its fields, `state` and the next fires.
pub fn view(s: &Schedule) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    let next: Vec<DateTime<Utc>> = match Plan::of(s) {
        Ok(p) if s.enabled => p.preview(Utc::now().max(s.active_since), PREVIEW),
        _ => Vec::new(),
    };
    let state = if !s.enabled {
        "paused"
    } else if next.is_empty() {
        "done"
    } else {
        "active"
    };
    v["state"] = json!(state);
    v["next_fires"] = json!(next);
    v
}

/// Authenticates, and records whether `who` may manage schedules (`owner`: the schedule's).
async fn manage(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    action: &str,
    target: Option<String>,
    owner: Option<&str>,
) -> Result<Principal, ApiError> {
    let who = st.authenticate(headers, caller, action).await?;
    let mut d = st.acl.check(&who, Permission::ManageSchedules);
    if d.allowed
        && let Some(o) = owner
        && o != who.user
        && !st.acl.is_super(&who)
    {
        d = crate::acl::Decision::deny(format!(
            "the schedule belongs to {o}; only its owner or a super user may manage it"
        ));
    }
    st.enforce(&who, action, target, d, caller).await?;
    Ok(who)
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| {
        bad(format!(
            "'{}' is not a schedule id (a UUID)",
            id.chars().take(64).collect::<String>()
        ))
    })
}

/// Loads a schedule (404 when it does not exist; audited).
async fn load(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    action: &str,
    id: &str,
) -> Result<(Principal, Schedule, u64), ApiError> {
    let sid = match parse_id(id) {
        Ok(s) => s,
        Err(e) => {
            let who = st.authenticate(headers, caller, action).await?;
            st.audit_malformed(Some(&who.user), action, &e.message, caller)
                .await?;
            return Err(e);
        }
    };
    let found = st
        .schedules
        .get(&sid)
        .await
        .map_err(|e| ApiError::internal("reading the schedule", e))?;
    let Some((s, rev)) = found else {
        let who = st.authenticate(headers, caller, action).await?;
        st.audit(
            Some(&who.user),
            action,
            Some(id.to_string()),
            false,
            "no such schedule",
            caller,
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("schedule {sid} does not exist"),
        ));
    };
    let who = manage(
        st,
        headers,
        caller,
        action,
        Some(id.to_string()),
        Some(&s.owner),
    )
    .await?;
    Ok((who, s, rev))
}

pub async fn list_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Value, ApiError> {
    let who = manage(st, headers, caller, "schedules.list", None, None).await?;
    let all = st
        .schedules
        .list()
        .await
        .map_err(|e| ApiError::internal("listing schedules", e))?;
    let sup = st.acl.is_super(&who);
    let list: Vec<Value> = all
        .iter()
        .filter(|s| sup || s.owner == who.user)
        .map(view)
        .collect();
    Ok(json!({ "schedules": list }))
}

pub async fn create_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    body: &[u8],
) -> Result<Value, ApiError> {
    let who = st.authenticate(headers, caller, "schedules.create").await?;
    let input: ScheduleInput = match serde_json::from_slice(body) {
        Ok(i) => i,
        Err(e) => {
            let msg = format!(
                "the body is not a valid schedule: {e}. Send JSON like {{\"command\": \"hello\", \"kind\": \"cron\", \"cron\": \"0 0 * * * *\"}}"
            );
            st.audit_malformed(Some(&who.user), "schedules.create", &msg, caller)
                .await?;
            return Err(bad(msg));
        }
    };
    let now = Utc::now();
    let mut s = Schedule {
        id: Uuid::now_v7(),
        name: String::new(),
        command: input.command.clone().unwrap_or_default(),
        params: BTreeMap::new(),
        target: ScheduleTarget::default(),
        timing: Timing::Once { at: now },
        owner: who.user.clone(),
        owner_roles: who.roles.clone(),
        enabled: true,
        overlap: Overlap::default(),
        misfire: Misfire::default(),
        jitter: None,
        active_since: now,
        job_id: None,
        created_at: now,
        updated_at: now,
    };
    let target = Some(s.command.clone());
    let checked = async {
        let d = st.acl.check(&who, Permission::ManageSchedules);
        if !d.allowed {
            return Err(ApiError::new(ErrorCode::Forbidden, d.reason));
        }
        apply(st, &who, &mut s, &input, true).await
    }
    .await;
    if let Err(e) = checked {
        st.audit(
            Some(&who.user),
            "schedules.create",
            target,
            false,
            &e.message,
            caller,
        )
        .await?;
        return Err(e);
    }
    st.schedules
        .create(&s)
        .await
        .map_err(|e| ApiError::internal("storing the schedule", e))?;
    st.audit(
        Some(&who.user),
        "schedules.create",
        Some(s.id.to_string()),
        true,
        &format!("created: {} {}", s.command, describe(&s.timing)),
        caller,
    )
    .await?;
    Ok(view(&s))
}

fn describe(t: &Timing) -> String {
    match t {
        Timing::Cron { cron, time_zone } => format!("cron '{cron}' in {time_zone}"),
        Timing::Once { at } => format!("once at {at}"),
        Timing::Interval { every, .. } => {
            format!("every {}", taskwire_core::units::format_duration(*every))
        }
    }
}

pub async fn get_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
) -> Result<Value, ApiError> {
    let (_, s, _) = load(st, headers, caller, "schedules.get", id).await?;
    Ok(view(&s))
}

pub async fn update_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let (who, mut s, rev) = load(st, headers, caller, "schedules.update", id).await?;
    let input: ScheduleInput = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not a valid schedule change: {e}")))?;
    let before = s.clone();
    if let Err(e) = apply(st, &who, &mut s, &input, false).await {
        st.audit(
            Some(&who.user),
            "schedules.update",
            Some(id.to_string()),
            false,
            &e.message,
            caller,
        )
        .await?;
        return Err(e);
    }
    st.schedules
        .update(&s, rev)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Conflict, e.to_string()))?;
    let what = if before.enabled != s.enabled {
        if s.enabled { "resumed" } else { "paused" }
    } else {
        "changed"
    };
    st.audit(
        Some(&who.user),
        "schedules.update",
        Some(id.to_string()),
        true,
        &format!("{what}: {} {}", s.command, describe(&s.timing)),
        caller,
    )
    .await?;
    Ok(view(&s))
}

pub async fn set_enabled_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
    enabled: bool,
) -> Result<Value, ApiError> {
    let body = serde_json::to_vec(&json!({ "enabled": enabled })).unwrap_or_default();
    update_as(st, headers, caller, id, &body).await
}

pub async fn delete_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
) -> Result<Value, ApiError> {
    let (_, s, _) = load(st, headers, caller, "schedules.delete", id).await?;
    st.schedules
        .remove(&s, None)
        .await
        .map_err(|e| ApiError::internal("deleting the schedule", e))?;
    Ok(json!({ "deleted": s.id }))
}

/// Query of a schedule's history.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Fires at or after this instant (default: one day ago).
    pub since: Option<DateTime<Utc>>,
    /// At most this many (1 to 1000, default 200).
    pub limit: Option<usize>,
}

pub async fn history_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
    q: &HistoryQuery,
) -> Result<Value, ApiError> {
    let (_, s, _) = load(st, headers, caller, "schedules.history", id).await?;
    let since = q
        .since
        .unwrap_or_else(|| Utc::now() - chrono::Duration::days(1));
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let fires = st
        .schedules
        .history(&s.id, since, limit)
        .await
        .map_err(|e| ApiError::internal("reading the history", e))?;
    let next = (fires.len() == limit)
        .then(|| {
            fires
                .last()
                .map(|f| f.fire_at + chrono::Duration::milliseconds(1))
        })
        .flatten();
    Ok(json!({ "fires": fires, "next_since": next }))
}

pub async fn preview_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    body: &[u8],
) -> Result<Value, ApiError> {
    let _who = st
        .authenticate(headers, caller, "schedules.preview")
        .await?;
    let input: ScheduleInput = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not a valid timing: {e}")))?;
    let t = timing(&input, None)
        .map_err(bad)?
        .ok_or_else(|| bad("give kind and its fields"))?;
    let now = Utc::now();
    let plan = Plan::new(&t, input.start.unwrap_or(now)).map_err(bad)?;
    Ok(json!({ "next_fires": plan.preview(now, 10) }))
}

/// A delayed job: a one-shot schedule of the caller that runs `req` at `at`. The job id is
/// known now and the job reads as `scheduled` until it is queued.
pub async fn delay(
    st: &AppState,
    who: &Principal,
    caller: &Caller,
    req: SubmitRequest,
    at: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let d = st.acl.check_run(who, &req.command);
    let target_txt = Some(format!("{} (not before {at})", req.command));
    if !d.allowed {
        st.audit(
            Some(&who.user),
            "jobs.submit",
            target_txt,
            false,
            &d.reason,
            caller,
        )
        .await?;
        return Err(ApiError::new(ErrorCode::Forbidden, d.reason));
    }
    let now = Utc::now();
    let id = Uuid::now_v7();
    let job_id = fire_job_id(&who.user, &id, at);
    let input = ScheduleInput {
        channel: req.channel.clone(),
        instance: req.instance,
        all_instances: Some(req.all_instances),
        labels: Some(req.labels.clone()),
        ..Default::default()
    };
    let s = Schedule {
        id,
        name: format!("delayed job {job_id}"),
        command: req.command.clone(),
        params: req.params.clone(),
        target: target(&input, &ScheduleTarget::default()).map_err(bad)?,
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
    st.schedules
        .create(&s)
        .await
        .map_err(|e| ApiError::internal("storing the delayed job", e))?;
    st.schedules
        .index_job(&job_id, &id)
        .await
        .map_err(|e| ApiError::internal("storing the delayed job", e))?;
    st.audit(
        Some(&who.user),
        "jobs.submit",
        Some(format!("{} -> {job_id} (not before {at})", req.command)),
        true,
        &d.reason,
        caller,
    )
    .await?;
    Ok(scheduled_view(&s))
}

/// The idempotency key of one fire: the same fire always names the same job.
pub fn fire_key(schedule: &Uuid, at: DateTime<Utc>) -> String {
    format!("schedule:{schedule}:{}", at.timestamp_millis())
}

/// The id of the (first) job of one fire.
pub fn fire_job_id(owner: &str, schedule: &Uuid, at: DateTime<Utc>) -> Uuid {
    derive_id(owner, Some(&fire_key(schedule, at)), "0")
}

/// A delayed job that is not queued yet, as `GET /api/v1/jobs/{id}` shows it.
pub fn scheduled_view(s: &Schedule) -> Value {
    let at = match &s.timing {
        Timing::Once { at } => Some(*at),
        _ => None,
    };
    json!({
        "job_id": s.job_id,
        "command": s.command,
        "params": s.params,
        "requested_by": s.owner,
        "state": "scheduled",
        "not_before": at,
        "schedule_id": s.id,
        "queued_at": null,
    })
}

/// The delayed job `job_id`, while it waits for its time.
pub async fn delayed(st: &AppState, job_id: Uuid) -> Result<Option<Schedule>, ApiError> {
    let sid = st
        .schedules
        .job_index(&job_id)
        .await
        .map_err(|e| ApiError::internal("reading the schedules", e))?;
    let Some(sid) = sid else { return Ok(None) };
    let Some((s, _)) = st
        .schedules
        .get(&sid)
        .await
        .map_err(|e| ApiError::internal("reading the schedules", e))?
    else {
        return Ok(None);
    };
    Ok(waits(st, &s).await?.then_some(s))
}

/// Whether the delayed job of `s` still waits for its time: its one fire is neither taken
/// yet nor finished. (Once it is, the job's own record speaks for it.)
pub async fn waits(st: &AppState, s: &Schedule) -> Result<bool, ApiError> {
    let Timing::Once { at } = s.timing else {
        return Ok(false);
    };
    let (p, _) = st
        .schedules
        .progress(&s.id)
        .await
        .map_err(|e| ApiError::internal("reading the schedules", e))?;
    Ok(p.through.is_none_or(|t| t < at) || !p.inflight.is_empty())
}

// ---- HTTP handlers ----

pub async fn list(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    list_as(&st, &headers, &Caller::http(addr)).await.map(Json)
}

pub async fn create(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create_as(&st, &headers, &Caller::http(addr), &body)
        .await
        .map(|v| (StatusCode::CREATED, Json(v)))
}

pub async fn get_one(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    get_as(&st, &headers, &Caller::http(addr), &id)
        .await
        .map(Json)
}

pub async fn update(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    update_as(&st, &headers, &Caller::http(addr), &id, &body)
        .await
        .map(Json)
}

pub async fn delete(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    delete_as(&st, &headers, &Caller::http(addr), &id)
        .await
        .map(Json)
}

pub async fn pause(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled_as(&st, &headers, &Caller::http(addr), &id, false)
        .await
        .map(Json)
}

pub async fn resume(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled_as(&st, &headers, &Caller::http(addr), &id, true)
        .await
        .map(Json)
}

pub async fn history(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = q.map_err(|e| bad(format!("invalid query: {e}")))?;
    history_as(&st, &headers, &Caller::http(addr), &id, &q)
        .await
        .map(Json)
}

pub async fn preview(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    preview_as(&st, &headers, &Caller::http(addr), &body)
        .await
        .map(Json)
}
