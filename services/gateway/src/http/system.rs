//! Health, identity, the fleet and the audit log: `GET /healthz`, `/readyz`,
//! `/api/v1/me`, `/api/v1/commands`, `/api/v1/instances`, `/api/v1/audit`.

use crate::call::{AppState, Call};
use crate::error::ApiError;
use crate::identity::Action;
use crate::ops;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use taskwire_core::wire::api::{CommandView, Me};
use taskwire_core::wire::{AuditPage, AuditQuery, InstanceInfo};

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the NATS connection is up and the instance registry's watch is current (it is
/// not while a node it depended on is lost and the watch starts again): a balancer then sends
/// requests to a gateway that can place jobs now.
pub async fn readyz(State(gw): State<AppState>) -> (StatusCode, &'static str) {
    if gw.client.connection_state() != async_nats::connection::State::Connected {
        return (StatusCode::SERVICE_UNAVAILABLE, "NATS is not connected\n");
    }
    if !gw.registry.is_current() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the instance registry is not current (its watch is starting again)\n",
        );
    }
    (StatusCode::OK, "ready\n")
}

pub async fn me(call: Call) -> Result<Json<Me>, ApiError> {
    let who = call.who(Action::Me).await?;
    Ok(Json(ops::fleet::me(&call.gw, &who)))
}

pub async fn commands(call: Call) -> Result<Json<Vec<CommandView>>, ApiError> {
    let who = call.who(Action::CommandsList).await?;
    ops::fleet::commands(&call.gw, &who, &call.caller)
        .await
        .map(Json)
}

pub async fn instances(call: Call) -> Result<Json<Vec<InstanceInfo>>, ApiError> {
    let who = call.who(Action::InstancesList).await?;
    ops::fleet::instances(&call.gw, &who, &call.caller)
        .await
        .map(Json)
}

pub async fn audit(
    call: Call,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let action = Action::AuditList;
    let who = call.who(action).await?;
    let filter = call.query(&who, action, q).await?;
    ops::audit_log::list(&call.gw, &who, &call.caller, filter)
        .await
        .map(Json)
}
