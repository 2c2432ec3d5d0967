//! Health, identity and the instance registry.

use crate::acl::Permission;
use crate::error::ApiError;
use crate::state::{AppState, Caller};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use taskwire_core::wire::InstanceInfo;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the NATS connection is up.
pub async fn readyz(State(st): State<AppState>) -> (StatusCode, &'static str) {
    match st.client.connection_state() {
        async_nats::connection::State::Connected => (StatusCode::OK, "ready\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "NATS is not connected\n"),
    }
}

/// The answer of `GET /api/v1/me`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Me {
    pub user: String,
    pub roles: Vec<String>,
    pub super_user: bool,
    pub permissions: Vec<Permission>,
}

pub async fn me(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Me>, ApiError> {
    let caller = Caller::http(addr);
    let who = st.authenticate(&headers, &caller, "me").await?;
    Ok(Json(Me {
        super_user: st.acl.is_super(&who),
        permissions: st.acl.permissions(&who).into_iter().collect(),
        user: who.user,
        roles: who.roles,
    }))
}

pub async fn instances(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Vec<InstanceInfo>>, ApiError> {
    let caller = Caller::http(addr);
    st.authorize(
        &headers,
        &caller,
        "instances.list",
        None,
        Permission::ReadInstances,
    )
    .await?;
    Ok(Json(registry(&st).await?))
}

/// Every live instance, by GUID order: from the in-memory copy, or the bucket while that is
/// not current.
pub async fn registry(st: &AppState) -> Result<Vec<InstanceInfo>, ApiError> {
    if let Some(list) = st.registry.snapshot() {
        return Ok(list);
    }
    let kv = &st.topology.instances;
    let mut keys = kv
        .keys()
        .await
        .map_err(|e| ApiError::internal("reading the instance registry", e))?;
    let mut out = Vec::new();
    while let Some(k) = keys.next().await {
        let Ok(k) = k else { continue };
        if let Ok(Some(v)) = kv.get(&k).await
            && let Ok(info) = serde_json::from_slice::<InstanceInfo>(&v)
        {
            out.push(info);
        }
    }
    out.sort_by_key(|i| i.guid);
    Ok(out)
}
