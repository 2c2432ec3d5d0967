//! Schedules: list, create, get, update, pause, resume, delete, history and preview.
//! Managing schedules needs `manage_schedules` (one's own; super users manage all); every
//! change is audited. A fire runs as the owner, checked again then (see `crate::fire`).

use super::schedule_rules;
use crate::error::{ApiError, ErrorCode};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Principal};
use chrono::Utc;
use std::collections::BTreeMap;
use taskwire_core::catalog::validate_params;
use taskwire_core::schedule::Plan;
use taskwire_core::wire::api::{
    Deleted, FireHistory, FirePreview, HistoryQuery, ScheduleInput, ScheduleList, ScheduleState,
    ScheduleView,
};
use taskwire_core::wire::{Misfire, Overlap, Schedule, ScheduleTarget, Timing};
use uuid::Uuid;

/// How many upcoming fires a schedule's view shows.
const PREVIEW: usize = 5;

/// A schedule as the API shows it: its fields, its state and the next fires.
pub fn view(s: &Schedule) -> ScheduleView {
    let next = match Plan::of(s) {
        Ok(p) if s.enabled => p.preview(Utc::now().max(s.active_since), PREVIEW),
        _ => Vec::new(),
    };
    let state = if !s.enabled {
        ScheduleState::Paused
    } else if next.is_empty() {
        ScheduleState::Done
    } else {
        ScheduleState::Active
    };
    ScheduleView {
        schedule: s.clone(),
        state,
        next_fires: next,
    }
}

/// Records whether `who` may manage schedules (`owner`: the schedule's).
async fn manage(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
    target: Option<String>,
    owner: Option<&str>,
) -> Result<(), ApiError> {
    let d = gw.acl.check_manage(who, owner);
    gw.enforce(who, action, target, d, caller).await
}

/// Loads schedule `id` for `action` (404 when it does not exist; audited) once `who` may
/// manage it. Returns it with its revision.
async fn load(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
    id: Uuid,
) -> Result<(Schedule, u64), ApiError> {
    let found = gw
        .schedules
        .get(&id)
        .await
        .map_err(|e| ApiError::internal("reading the schedule", e))?;
    let Some((s, rev)) = found else {
        gw.audit(
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
            format!("schedule {id} does not exist"),
        ));
    };
    manage(
        gw,
        who,
        caller,
        action,
        Some(id.to_string()),
        Some(&s.owner),
    )
    .await?;
    Ok((s, rev))
}

/// One's own schedules (all of them for super users).
pub async fn list(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
) -> Result<ScheduleList, ApiError> {
    manage(gw, who, caller, Action::SchedulesList, None, None).await?;
    let all = gw
        .schedules
        .list()
        .await
        .map_err(|e| ApiError::internal("listing schedules", e))?;
    let sup = gw.acl.is_super(who);
    Ok(ScheduleList {
        schedules: all
            .iter()
            .filter(|s| sup || s.owner == who.user)
            .map(view)
            .collect(),
    })
}

/// Checks `input` against `s` and applies it: the body's own rules, then the owner's right to
/// run the command now (checked again at every fire) and the parameters against the schema
/// the instances advertise, when one does.
async fn apply(
    gw: &Gateway,
    who: &Principal,
    s: &mut Schedule,
    input: &ScheduleInput,
    creating: bool,
) -> Result<(), ApiError> {
    schedule_rules::apply(s, input, creating, Utc::now()).map_err(ApiError::invalid)?;
    let d = gw.acl.check_run(who, &s.command);
    if !d.allowed {
        return Err(ApiError::new(ErrorCode::Forbidden, d.reason));
    }
    let instances = gw.instances().await?;
    if let Some(c) = instances
        .iter()
        .flat_map(|i| i.catalog.iter())
        .find(|c| c.name == s.command)
    {
        validate_params(&c.params, &s.params)
            .map_err(|e| ApiError::new(ErrorCode::InvalidParams, e.to_string()))?;
    }
    Ok(())
}

/// Creates a schedule owned by `who`.
pub async fn create(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    input: ScheduleInput,
) -> Result<ScheduleView, ApiError> {
    let action = Action::SchedulesCreate;
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
        let d = gw.acl.check_manage(who, None);
        if !d.allowed {
            return Err(ApiError::new(ErrorCode::Forbidden, d.reason));
        }
        apply(gw, who, &mut s, &input, true).await
    }
    .await;
    if let Err(e) = checked {
        return Err(gw.refuse(&who.user, action, target, e, caller).await);
    }
    gw.schedules
        .create(&s)
        .await
        .map_err(|e| ApiError::internal("storing the schedule", e))?;
    gw.audit(
        Some(&who.user),
        action,
        Some(s.id.to_string()),
        true,
        &format!(
            "created: {} {}",
            s.command,
            schedule_rules::describe(&s.timing)
        ),
        caller,
    )
    .await?;
    Ok(view(&s))
}

/// One schedule.
pub async fn get(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    id: Uuid,
) -> Result<ScheduleView, ApiError> {
    let (s, _) = load(gw, who, caller, Action::SchedulesGet, id).await?;
    Ok(view(&s))
}

/// Changes a schedule (any field of the create body).
pub async fn update(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    id: Uuid,
    input: ScheduleInput,
) -> Result<ScheduleView, ApiError> {
    change(gw, who, caller, Action::SchedulesUpdate, id, input).await
}

/// Pauses (`enabled` false) or resumes a schedule; a resume counts from now.
pub async fn set_enabled(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    id: Uuid,
    enabled: bool,
) -> Result<ScheduleView, ApiError> {
    let action = if enabled {
        Action::SchedulesResume
    } else {
        Action::SchedulesPause
    };
    let input = ScheduleInput {
        enabled: Some(enabled),
        ..ScheduleInput::default()
    };
    change(gw, who, caller, action, id, input).await
}

async fn change(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    action: Action,
    id: Uuid,
    input: ScheduleInput,
) -> Result<ScheduleView, ApiError> {
    let (mut s, rev) = load(gw, who, caller, action, id).await?;
    let before = s.clone();
    if let Err(e) = apply(gw, who, &mut s, &input, false).await {
        return Err(gw
            .refuse(&who.user, action, Some(id.to_string()), e, caller)
            .await);
    }
    // A change that lost the race to another (the revision moved) is a conflict to retry; a
    // store that did not answer is an outage.
    gw.schedules
        .update(&s, rev)
        .await
        .map_err(|e| ApiError::from_core("updating the schedule", e))?;
    let what = if before.enabled != s.enabled {
        if s.enabled { "resumed" } else { "paused" }
    } else {
        "changed"
    };
    gw.audit(
        Some(&who.user),
        action,
        Some(id.to_string()),
        true,
        &format!(
            "{what}: {} {}",
            s.command,
            schedule_rules::describe(&s.timing)
        ),
        caller,
    )
    .await?;
    Ok(view(&s))
}

/// Deletes a schedule (its fire history stays until it expires).
pub async fn delete(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    id: Uuid,
) -> Result<Deleted, ApiError> {
    let (s, _) = load(gw, who, caller, Action::SchedulesDelete, id).await?;
    gw.schedules
        .remove(&s, None)
        .await
        .map_err(|e| ApiError::from_core("deleting the schedule", e))?;
    Ok(Deleted { deleted: s.id })
}

/// A schedule's fires from `q.since` (default a day ago), oldest first.
pub async fn history(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    id: Uuid,
    q: HistoryQuery,
) -> Result<FireHistory, ApiError> {
    let (s, _) = load(gw, who, caller, Action::SchedulesHistory, id).await?;
    let since = q
        .since
        .unwrap_or_else(|| Utc::now() - chrono::Duration::days(1));
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let fires = gw
        .schedules
        .history(&s.id, since, limit)
        .await
        .map_err(|e| ApiError::internal("reading the history", e))?;
    let next_since = (fires.len() == limit)
        .then(|| {
            fires
                .last()
                .map(|f| f.fire_at + chrono::Duration::milliseconds(1))
        })
        .flatten();
    Ok(FireHistory { fires, next_since })
}

/// The next ten fires of a timing, nothing saved. Any authenticated user may ask.
pub fn preview(input: &ScheduleInput) -> Result<FirePreview, ApiError> {
    let t = schedule_rules::timing(input, None)
        .map_err(ApiError::invalid)?
        .ok_or_else(|| ApiError::invalid("give kind and its fields"))?;
    let now = Utc::now();
    let plan = Plan::new(&t, input.start.unwrap_or(now)).map_err(ApiError::invalid)?;
    Ok(FirePreview {
        next_fires: plan.preview(now, 10),
    })
}
