//! `GET /api/v1/commands`: what the caller may run, with parameter schemas, and where.

use crate::error::ApiError;
use crate::state::{AppState, Caller};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use taskwire_core::catalog::ParamSpec;
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize)]
pub struct CommandView {
    pub name: String,
    pub description: String,
    pub params: Vec<ParamSpec>,
    pub channels: Vec<String>,
    pub instances: Vec<InstanceRef>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct InstanceRef {
    pub guid: Uuid,
    pub hostname: String,
}

pub async fn list(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Vec<CommandView>>, ApiError> {
    list_as(&st, &headers, &Caller::http(addr)).await.map(Json)
}

/// The commands the caller may run, from any door.
pub async fn list_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Vec<CommandView>, ApiError> {
    let caller = caller.clone();
    let who = st.authenticate(headers, &caller, "commands.list").await?;
    st.audit(
        Some(&who.user),
        "commands.list",
        None,
        true,
        "authenticated users may list the commands they may run",
        &caller,
    )
    .await?;
    let mut by_name: BTreeMap<String, CommandView> = BTreeMap::new();
    for inst in super::system::registry(st).await? {
        for c in inst.catalog {
            if !st.acl.check_run(&who, &c.name).allowed {
                continue;
            }
            let view = by_name
                .entry(c.name.clone())
                .or_insert_with(|| CommandView {
                    name: c.name.clone(),
                    description: c.description.clone(),
                    params: c.params.clone(),
                    channels: Vec::new(),
                    instances: Vec::new(),
                });
            for ch in c.channels {
                if !view.channels.contains(&ch) {
                    view.channels.push(ch);
                }
            }
            view.instances.push(InstanceRef {
                guid: inst.guid,
                hostname: inst.hostname.clone(),
            });
        }
    }
    Ok(by_name.into_values().collect())
}
