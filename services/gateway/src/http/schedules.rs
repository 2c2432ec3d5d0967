//! The schedule routes: `GET/POST /api/v1/schedules`, `GET/PATCH/DELETE
//! /api/v1/schedules/{id}`, `POST .../pause|resume`, `GET .../history`,
//! `POST /api/v1/schedules/preview`.

use crate::call::Call;
use crate::error::ApiError;
use crate::identity::Action;
use crate::ops;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use taskwire_core::wire::api::schedules::{CHANGE_EXAMPLE, SCHEDULE_EXAMPLE, TIMING_EXAMPLE};
use taskwire_core::wire::api::{
    Deleted, FireHistory, FirePreview, HistoryQuery, ScheduleInput, ScheduleList, ScheduleView,
};

pub async fn list(call: Call) -> Result<Json<ScheduleList>, ApiError> {
    let who = call.who(Action::SchedulesList).await?;
    ops::schedules::list(&call.gw, &who, &call.caller)
        .await
        .map(Json)
}

pub async fn create(
    call: Call,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let action = Action::SchedulesCreate;
    let who = call.who(action).await?;
    let input: ScheduleInput = call
        .json(&who, action, body, "schedule", SCHEDULE_EXAMPLE)
        .await?;
    let view = ops::schedules::create(&call.gw, &who, &call.caller, input).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn get_one(call: Call, Path(id): Path<String>) -> Result<Json<ScheduleView>, ApiError> {
    let action = Action::SchedulesGet;
    let who = call.who(action).await?;
    let id = call.schedule_id(&who, action, &id).await?;
    ops::schedules::get(&call.gw, &who, &call.caller, id)
        .await
        .map(Json)
}

pub async fn update(
    call: Call,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ScheduleView>, ApiError> {
    let action = Action::SchedulesUpdate;
    let who = call.who(action).await?;
    let id = call.schedule_id(&who, action, &id).await?;
    let input: ScheduleInput = call
        .json(&who, action, body, "schedule change", CHANGE_EXAMPLE)
        .await?;
    ops::schedules::update(&call.gw, &who, &call.caller, id, input)
        .await
        .map(Json)
}

pub async fn pause(call: Call, Path(id): Path<String>) -> Result<Json<ScheduleView>, ApiError> {
    set_enabled(call, id, false).await
}

pub async fn resume(call: Call, Path(id): Path<String>) -> Result<Json<ScheduleView>, ApiError> {
    set_enabled(call, id, true).await
}

async fn set_enabled(
    call: Call,
    id: String,
    enabled: bool,
) -> Result<Json<ScheduleView>, ApiError> {
    let action = if enabled {
        Action::SchedulesResume
    } else {
        Action::SchedulesPause
    };
    let who = call.who(action).await?;
    let id = call.schedule_id(&who, action, &id).await?;
    ops::schedules::set_enabled(&call.gw, &who, &call.caller, id, enabled)
        .await
        .map(Json)
}

pub async fn delete(call: Call, Path(id): Path<String>) -> Result<Json<Deleted>, ApiError> {
    let action = Action::SchedulesDelete;
    let who = call.who(action).await?;
    let id = call.schedule_id(&who, action, &id).await?;
    ops::schedules::delete(&call.gw, &who, &call.caller, id)
        .await
        .map(Json)
}

pub async fn history(
    call: Call,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<FireHistory>, ApiError> {
    let action = Action::SchedulesHistory;
    let who = call.who(action).await?;
    let id = call.schedule_id(&who, action, &id).await?;
    let q = call.query(&who, action, q).await?;
    ops::schedules::history(&call.gw, &who, &call.caller, id, q)
        .await
        .map(Json)
}

pub async fn preview(
    call: Call,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FirePreview>, ApiError> {
    let action = Action::SchedulesPreview;
    let who = call.who(action).await?;
    let input: ScheduleInput = call
        .json(&who, action, body, "timing", TIMING_EXAMPLE)
        .await?;
    ops::schedules::preview(&input).map(Json)
}
