//! What every request handler shares.

use crate::acl::Acl;
use crate::auth::{Authenticator, Principal};
use crate::config::GatewayConfig;
use crate::error::{ApiError, ErrorCode};
use crate::feed::FeedHub;
use axum::http::HeaderMap;
use std::net::SocketAddr;
use std::sync::Arc;
use taskwire_core::Namespace;
use taskwire_core::jobs::JobStore;
use taskwire_core::topology::Topology;
use taskwire_core::wire::{AuditEvent, Via, audit};

#[derive(Debug)]
pub struct Inner {
    pub client: async_nats::Client,
    pub ns: Namespace,
    pub topology: Topology,
    pub store: JobStore,
    pub schedules: taskwire_core::schedule::store::ScheduleStore,
    pub registry: crate::registry::Registry,
    pub tokens: Authenticator,
    pub acl: Acl,
    pub cfg: GatewayConfig,
    pub feeds: FeedHub,
    pub console: crate::routes::console::Console,
}

pub type AppState = Arc<Inner>;

/// The caller of one request: where from, and through which door.
#[derive(Debug, Clone)]
pub struct Caller {
    pub source: String,
    /// The peer address (absent for the NATS API); proxy headers are trusted only from
    /// configured networks.
    pub ip: Option<std::net::IpAddr>,
    pub via: Via,
}

impl Caller {
    pub fn http(addr: SocketAddr) -> Self {
        Self {
            source: addr.to_string(),
            ip: Some(addr.ip()),
            via: Via::Http,
        }
    }
}

impl Inner {
    /// Authenticates the request; a failure is audited and answered 401.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        caller: &Caller,
        action: &str,
    ) -> Result<Principal, ApiError> {
        let failure = match self.tokens.authenticate(headers, caller.ip) {
            Ok(p) => return Ok(p),
            Err(f) => f.message(),
        };
        self.audit(None, action, None, false, &failure, caller)
            .await?;
        Err(ApiError::new(ErrorCode::Unauthorized, failure))
    }

    /// Records a decision durably. If it cannot be recorded the request fails: nothing happens
    /// without its audit record.
    pub async fn audit(
        &self,
        actor: Option<&str>,
        action: &str,
        target: Option<String>,
        allowed: bool,
        reason: &str,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        self.audit_kind(
            audit::KIND_DECISION,
            actor,
            action,
            target,
            allowed,
            reason,
            caller,
        )
        .await
    }

    /// Records an ACL decision about `who` doing `action` (on `target`), then answers 403 with
    /// its reason if it was a denial.
    pub async fn enforce(
        &self,
        who: &Principal,
        action: &str,
        target: Option<String>,
        d: crate::acl::Decision,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        self.audit(
            Some(&who.user),
            action,
            target,
            d.allowed,
            &d.reason,
            caller,
        )
        .await?;
        if d.allowed {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, d.reason))
        }
    }

    /// Records a request that could not be read.
    pub async fn audit_malformed(
        &self,
        actor: Option<&str>,
        action: &str,
        reason: &str,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        self.audit_kind(
            audit::KIND_MALFORMED,
            actor,
            action,
            None,
            false,
            reason,
            caller,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn audit_kind(
        &self,
        kind: &str,
        actor: Option<&str>,
        action: &str,
        target: Option<String>,
        allowed: bool,
        reason: &str,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        let event = AuditEvent {
            id: uuid::Uuid::now_v7(),
            at: chrono::Utc::now(),
            actor: actor.map(str::to_string),
            action: action.to_string(),
            target,
            allowed,
            reason: reason.to_string(),
            source: caller.source.clone(),
            via: caller.via,
        };
        self.store
            .publish_audit(kind, &event)
            .await
            .map_err(|e| ApiError::internal("recording the audit event", e))
    }

    /// Authenticates, checks a permission, and audits the decision.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        caller: &Caller,
        action: &str,
        target: Option<String>,
        perm: crate::acl::Permission,
    ) -> Result<Principal, ApiError> {
        let who = self.authenticate(headers, caller, action).await?;
        let d = self.acl.check(&who, perm);
        self.enforce(&who, action, target, d, caller).await?;
        Ok(who)
    }
}
