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

/// Ready when the NATS connection is up and the instance registry can be read: its watched
/// copy is current, or has been lost for less than `outage_wait` (meanwhile submits read the
/// bucket and wait out the outage, so a balancer need not take every gateway out during one
/// leader election). A watch that stays lost longer makes the gateway not ready.
pub async fn readyz(State(gw): State<AppState>) -> (StatusCode, String) {
    if gw.client.connection_state() != async_nats::connection::State::Connected {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "NATS is not connected\n".into(),
        );
    }
    match gw.registry.stale_for() {
        Some(d) if d > gw.cfg.outage_wait => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the instance registry's watch has been lost for {d:.0?}; it is being started again\n"
            ),
        ),
        _ => (StatusCode::OK, "ready\n".into()),
    }
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
