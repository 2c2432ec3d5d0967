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
use crate::store_client::StoreClient;
use taskwire_core::Namespace;
use taskwire_core::jobs::JobStore;
use taskwire_core::registry::Registry;
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
        self.through_outage(|| self.jobs.publish_audit(kind, &event))
            .await
            .map_err(|e| ApiError::internal("recording the audit event", e))
    }

    /// Runs `step` again while it fails for an outage of NATS (a node lost, a stream electing
    /// its leader: 4-9 s at NATS's defaults), with backoff, until the request's deadline
    /// ([`within_outage_wait`]: `[gateway] outage_wait` from when the request began, shared
    /// by all its steps; outside one, `outage_wait` from now); then its last error, which the
    /// caller answers 503 with `Retry-After`. A caller sees latency instead of an error. Only
    /// for steps that may be repeated: every publish carries its message id and every create
    /// compares what is there. An attempt still under way at the deadline is abandoned.
    pub async fn through_outage<T, F>(
        &self,
        mut step: impl FnMut() -> F,
    ) -> Result<T, taskwire_core::Error>
    where
        F: std::future::Future<Output = Result<T, taskwire_core::Error>>,
    {
        let deadline = self.outage_deadline();
        let mut backoff = taskwire_core::retry::Backoff::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(1),
        );
        loop {
            let attempt = match tokio::time::timeout_at(deadline, step()).await {
                Ok(done) => done,
                Err(_) => Err(taskwire_core::Error::Topology {
                    what: "request",
                    name: "NATS".into(),
                    message: format!("no answer within outage_wait ({:?})", self.cfg.outage_wait),
                }),
            };
            match attempt {
                Err(e)
                    if e.kind() == taskwire_core::ErrorKind::Unavailable
                        && tokio::time::Instant::now() + backoff.peek() < deadline =>
                {
                    if backoff.failures() == 0 {
                        tracing::debug!(error = %e, wait = ?self.cfg.outage_wait, "NATS step failed; waiting out the outage");
                    }
                    backoff.wait().await;
                }
                done => {
                    if done.is_ok() && backoff.failures() > 0 {
                        tracing::debug!(
                            attempts = backoff.failures() + 1,
                            "NATS step done after an outage"
                        );
                    }
                    return done;
                }
            }
        }
    }

    /// When the request under way stops waiting out an outage ([`within_outage_wait`]; outside
    /// one, `outage_wait` from now).
    pub fn outage_deadline(&self) -> tokio::time::Instant {
        OUTAGE_DEADLINE
            .try_with(|d| *d)
            .unwrap_or_else(|_| tokio::time::Instant::now() + self.cfg.outage_wait)
    }

    /// Every live instance, by GUID order: from the registry's copy, or the bucket while the
    /// copy is not current.
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>, ApiError> {
        let ns = &self.topology.instances.name;
        self.through_outage(|| async {
            self.registry
                .list(&self.topology.instances)
                .await
                .map_err(|message| taskwire_core::Error::Topology {
                    what: "bucket",
                    name: ns.clone(),
                    message,
                })
        })
        .await
        .map_err(|e| ApiError::internal("reading the instance registry", e))
    }
}

tokio::task_local! {
    /// The instant a request stops waiting out an outage (see [`within_outage_wait`]).
    static OUTAGE_DEADLINE: tokio::time::Instant;
}

/// Runs `request` with one outage deadline for all its NATS steps: `[gateway] outage_wait`
/// from now, so a request that meets an outage at several steps still answers within it.
pub async fn within_outage_wait<T>(
    gw: &Gateway,
    request: impl std::future::Future<Output = T>,
) -> T {
    OUTAGE_DEADLINE
        .scope(tokio::time::Instant::now() + gw.cfg.outage_wait, request)
        .await
}
