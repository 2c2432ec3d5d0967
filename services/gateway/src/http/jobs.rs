//! The job routes: `POST/GET /api/v1/jobs`, `GET/DELETE /api/v1/jobs/{id}`,
//! `POST .../stop|kill`, `GET .../output`. Each authenticates, reads its input and calls the
//! operation in `crate::ops`.

use crate::call::Call;
use crate::error::ApiError;
use crate::identity::{Action, Principal};
use crate::ids::IdempotencyKey;
use crate::ops;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use taskwire_core::wire::KillReply;
use taskwire_core::wire::api::jobs::SUBMIT_EXAMPLE;
use taskwire_core::wire::api::{
    Deleted, JobList, JobView, OutputFormat, OutputOptions, SubmitRequest, Submitted,
};
use taskwire_core::wire::{JobQuery, KillMode};

pub async fn submit(
    call: Call,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let action = Action::JobsSubmit;
    let who = call.who(action).await?;
    let req: SubmitRequest = call
        .json(&who, action, body, "job request", SUBMIT_EXAMPLE)
        .await?;
    let key = idempotency_key(&call, &who).await?;
    let answer = ops::jobs::submit(&call.gw, &who, &call.caller, req, key).await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// The `Idempotency-Key` header, if any.
async fn idempotency_key(call: &Call, who: &Principal) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = call.headers.get("idempotency-key") else {
        return Ok(None);
    };
    match IdempotencyKey::parse(v.as_bytes()) {
        Ok(k) => Ok(Some(k)),
        Err(msg) => Err(call
            .malformed(who, Action::JobsSubmit, ApiError::invalid(msg))
            .await),
    }
}

pub async fn list(
    call: Call,
    q: Result<Query<JobQuery>, QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let action = Action::JobsList;
    let who = call.who(action).await?;
    let filter = call.query(&who, action, q).await?;
    ops::jobs::list(&call.gw, &who, &call.caller, filter)
        .await
        .map(Json)
}

pub async fn get_one(call: Call, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let action = Action::JobsGet;
    let who = call.who(action).await?;
    let id = call.job_id(&who, action, &id).await?;
    ops::jobs::get(&call.gw, &who, &call.caller, id)
        .await
        .map(Json)
}

pub async fn stop(call: Call, Path(id): Path<String>) -> Result<Json<KillReply>, ApiError> {
    end(call, id, KillMode::Stop).await
}

pub async fn kill(call: Call, Path(id): Path<String>) -> Result<Json<KillReply>, ApiError> {
    end(call, id, KillMode::Kill).await
}

async fn end(call: Call, id: String, mode: KillMode) -> Result<Json<KillReply>, ApiError> {
    let action = match mode {
        KillMode::Stop => Action::JobsStop,
        KillMode::Kill => Action::JobsKill,
    };
    let who = call.who(action).await?;
    let id = call.job_id(&who, action, &id).await?;
    ops::control::end(&call.gw, &who, &call.caller, id, mode)
        .await
        .map(Json)
}

pub async fn delete(call: Call, Path(id): Path<String>) -> Result<Json<Deleted>, ApiError> {
    let action = Action::JobsDelete;
    let who = call.who(action).await?;
    let id = call.job_id(&who, action, &id).await?;
    ops::control::delete(&call.gw, &who, &call.caller, id)
        .await
        .map(Json)
}

/// `GET /api/v1/jobs/{id}/output`: raw bytes, or NDJSON chunks (`?format=ndjson` or
/// `Accept: application/x-ndjson`), written as they are read.
pub async fn output(
    call: Call,
    Path(id): Path<String>,
    q: Result<Query<OutputOptions>, QueryRejection>,
) -> Result<Response, ApiError> {
    let action = Action::JobsOutput;
    let who = call.who(action).await?;
    let id = call.job_id(&who, action, &id).await?;
    let q = call.query(&who, action, q).await?;
    let format = match q.format.as_deref() {
        Some("ndjson") => OutputFormat::Ndjson,
        Some("text") => OutputFormat::Text,
        Some(other) => {
            let e = ApiError::invalid(format!("format '{other}' is not known; use text or ndjson"));
            return Err(call.malformed(&who, action, e).await);
        }
        None if call
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/x-ndjson")) =>
        {
            OutputFormat::Ndjson
        }
        None => OutputFormat::Text,
    };
    let log = ops::output::download(&call.gw, &who, &call.caller, id, format, q.stream).await?;
    let mut resp = axum::body::Body::from_stream(log).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match format {
            OutputFormat::Ndjson => "application/x-ndjson",
            OutputFormat::Text => "application/octet-stream",
        }),
    );
    Ok(resp)
}
