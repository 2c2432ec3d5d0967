//! `GET /api/v1/audit`: the audit log from the audit store, newest first, for holders of
//! `read_audit`. Reading it is itself audited.

use crate::acl::Permission;
use crate::error::{ApiError, ErrorCode};
use crate::history::{self, Stored};
use crate::state::{AppState, Caller};
use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use std::net::SocketAddr;
use taskwire_core::wire::history::{MAX_PAGE, STORE_AUDIT_LIST};
use taskwire_core::wire::{AuditPage, AuditQuery};

/// Filters of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub actor: Option<String>,
    /// An exact action (`jobs.kill`) or a family ending with a dot (`jobs.`).
    pub action: Option<String>,
    pub target: Option<String>,
    pub allowed: Option<bool>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

const ACTION: &str = "audit.list";

pub async fn list(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let q = query.map(|Query(q)| q).map_err(|e| e.to_string());
    list_as(&st, &headers, &Caller::http(addr), q)
        .await
        .map(Json)
}

/// The audit log for any door (`q`: the filters, or why they could not be read).
pub async fn list_as(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    q: Result<AuditParams, String>,
) -> Result<AuditPage, ApiError> {
    let who = st.authenticate(headers, caller, ACTION).await?;
    let q = match q {
        Ok(q) => q,
        Err(e) => {
            let msg = format!("invalid filters: {e}");
            st.audit_malformed(Some(&who.user), ACTION, &msg, caller)
                .await?;
            return Err(ApiError::new(ErrorCode::InvalidRequest, msg));
        }
    };
    let d = st.acl.check(&who, Permission::ReadAudit);
    st.enforce(&who, ACTION, None, d, caller).await?;
    let aq = AuditQuery {
        actor: q.actor,
        action: q.action,
        target: q.target,
        allowed: q.allowed,
        since: q.since,
        until: q.until,
        cursor: q.cursor,
        limit: Some(q.limit.unwrap_or(50).clamp(1, MAX_PAGE)),
    };
    match history::ask::<AuditPage>(st, STORE_AUDIT_LIST, &aq).await? {
        Stored::Found(page) => Ok(page),
        Stored::NotFound | Stored::NoStore => Err(ApiError::new(
            ErrorCode::Unavailable,
            "no audit writer is running, so the audit log cannot be read; start one (taskwire up runs one)",
        )),
    }
}
