//! The audit log from the audit store, newest first, for holders of `read_audit`. Reading it
//! is itself audited.

use crate::error::{ApiError, ErrorCode};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Permission, Principal};
use crate::store_client::Stored;
use taskwire_core::wire::history::{MAX_PAGE, STORE_AUDIT_LIST};
use taskwire_core::wire::{AuditPage, AuditQuery};

/// One page of the audit log matching `filter`.
pub async fn list(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
    filter: AuditQuery,
) -> Result<AuditPage, ApiError> {
    gw.authorize(who, caller, Action::AuditList, None, Permission::ReadAudit)
        .await?;
    let q = AuditQuery {
        limit: Some(filter.limit.unwrap_or(50).clamp(1, MAX_PAGE)),
        ..filter
    };
    match gw.history.ask::<AuditPage>(STORE_AUDIT_LIST, &q).await? {
        Stored::Found(page) => Ok(page),
        Stored::NotFound | Stored::NoStore => Err(ApiError::new(
            ErrorCode::Unavailable,
            "no audit writer is running, so the audit log cannot be read; start one (taskwire up runs one)",
        )),
    }
}
