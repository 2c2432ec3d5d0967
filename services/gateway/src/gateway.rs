//! What every operation and door shares: the connections, stores and caches of one gateway
//! process, and the steps every request goes through (authenticate, audit each decision,
//! enforce it). Nothing here knows which door a request came through.

use crate::acl::{Acl, Decision};
use crate::auth::{Authenticator, Credentials};
use crate::config::GatewayConfig;
use crate::error::{ApiError, ErrorCode};
use crate::feed::FeedHub;
use crate::identity::{Action, Caller, Permission, Principal};
use crate::known::KnownJobs;
use crate::registry::Registry;
use crate::store_client::StoreClient;
use taskwire_core::Namespace;
use taskwire_core::jobs::JobStore;
use taskwire_core::schedule::store::ScheduleStore;
use taskwire_core::topology::Topology;
use taskwire_core::wire::{AuditEvent, InstanceInfo, audit};

/// One gateway process: shared by every request (behind an `Arc`).
#[derive(Debug)]
pub struct Gateway {
    pub client: async_nats::Client,
    pub ns: Namespace,
    pub topology: Topology,
    /// Live job records, events, dispatch and audit publishing.
    pub jobs: JobStore,
    pub schedules: ScheduleStore,
    /// The audit store's answers (`tw.store.*`).
    pub history: StoreClient,
    pub registry: Registry,
    /// The owner and instance of the live jobs this gateway has seen (for stop and kill).
    pub known: KnownJobs,
    pub auth: Authenticator,
    pub acl: Acl,
    pub cfg: GatewayConfig,
    /// One output feed per watched job, shared by its viewers.
    pub feeds: FeedHub,
}

impl Gateway {
    /// Authenticates `creds` for `action`; a failure is audited and answered 401.
    pub async fn authenticate(
        &self,
        creds: &Credentials,
        caller: &Caller,
        action: Action,
    ) -> Result<Principal, ApiError> {
        let failure = match self.auth.authenticate(creds, caller.ip) {
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
        action: Action,
        target: Option<String>,
        allowed: bool,
        reason: &str,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        self.record(
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
        action: Action,
        target: Option<String>,
        d: Decision,
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

    /// Checks that `who` holds `perm` for `action`, and audits the decision.
    pub async fn authorize(
        &self,
        who: &Principal,
        caller: &Caller,
        action: Action,
        target: Option<String>,
        perm: Permission,
    ) -> Result<(), ApiError> {
        let d = self.acl.check(who, perm);
        self.enforce(who, action, target, d, caller).await
    }

    /// Records a request that could not be read, and returns the error to answer it with
    /// (`error`, or the failure to record it).
    pub async fn malformed(
        &self,
        actor: Option<&str>,
        action: Action,
        error: ApiError,
        caller: &Caller,
    ) -> ApiError {
        match self
            .record(
                audit::KIND_MALFORMED,
                actor,
                action,
                None,
                false,
                &error.message,
                caller,
            )
            .await
        {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    /// Records a decision to `actor` of `action` and answers with `error` (a refusal that is
    /// not an ACL rule: an unknown command, no instance, a conflict).
    pub async fn refuse(
        &self,
        actor: &str,
        action: Action,
        target: Option<String>,
        error: ApiError,
        caller: &Caller,
    ) -> ApiError {
        match self
            .audit(Some(actor), action, target, false, &error.message, caller)
            .await
        {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        kind: &str,
        actor: Option<&str>,
        action: Action,
        target: Option<String>,
        allowed: bool,
        reason: &str,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        let event = AuditEvent {
            id: uuid::Uuid::now_v7(),
            at: chrono::Utc::now(),
            actor: actor.map(str::to_string),
            action: action.as_str().to_string(),
            target,
            allowed,
            reason: reason.to_string(),
            source: caller.source.clone(),
            via: caller.via,
        };
        self.jobs
            .publish_audit(kind, &event)
            .await
            .map_err(|e| ApiError::internal("recording the audit event", e))
    }

    /// Every live instance, by GUID order: from the registry's copy, or the bucket while the
    /// copy is not current.
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>, ApiError> {
        self.registry
            .list(&self.topology.instances)
            .await
            .map_err(|e| ApiError::internal("reading the instance registry", e))
    }
}
