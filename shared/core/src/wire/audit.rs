//! Audit events: subject `tw.audit.<kind>` (`decision` for allowed and denied requests,
//! `malformed` for requests that could not be read), captured by stream `TW_EVENTS`. Every
//! request that reaches the gateway leaves one, published durably before anything it allowed
//! is dispatched.

use super::job::Via;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One audited decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique id (also the de-duplication id of the publish).
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// The authenticated user; absent when the request could not be authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What was asked, e.g. `jobs.submit`, `jobs.get`, `instances.list`.
    pub action: String,
    /// What it was asked of: a job id, a command name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub allowed: bool,
    /// Why, in words for people (the rule that allowed or denied it).
    pub reason: String,
    /// Remote address of the caller, or `nats` for the NATS API.
    pub source: String,
    pub via: Via,
}

/// Audit subject kind of allowed and denied decisions.
pub const KIND_DECISION: &str = "decision";
/// Audit subject kind of requests that could not be read.
pub const KIND_MALFORMED: &str = "malformed";
/// Audit kind of a [`JobDeleted`] notice.
pub const KIND_JOB_DELETED: &str = "job_deleted";

/// Published by the gateway on `tw.audit.job_deleted` once a finished job's live record and
/// output are gone: the audit store then removes the job's rows and keeps a tombstone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDeleted {
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    /// The authenticated user who deleted it.
    pub by: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audit_json_is_pinned() {
        let e = AuditEvent {
            id: Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap(),
            at: "2026-01-02T03:04:05Z".parse().unwrap(),
            actor: Some("bob".into()),
            action: "jobs.kill".into(),
            target: Some("0190f5c2-0000-7000-8000-000000000000".into()),
            allowed: false,
            reason: "bob may not kill jobs of alice (needs kill_any)".into(),
            source: "127.0.0.1:50312".into(),
            via: Via::Http,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d",
                "at": "2026-01-02T03:04:05Z",
                "actor": "bob",
                "action": "jobs.kill",
                "target": "0190f5c2-0000-7000-8000-000000000000",
                "allowed": false,
                "reason": "bob may not kill jobs of alice (needs kill_any)",
                "source": "127.0.0.1:50312",
                "via": "http"
            })
        );
        assert_eq!(serde_json::from_value::<AuditEvent>(v).unwrap(), e);
    }

    #[test]
    fn job_deleted_json_is_pinned() {
        let d = JobDeleted {
            job_id: Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap(),
            at: "2026-01-02T03:04:05Z".parse().unwrap(),
            by: "alice".into(),
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            json!({
                "job_id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d",
                "at": "2026-01-02T03:04:05Z",
                "by": "alice"
            })
        );
        assert_eq!(serde_json::from_value::<JobDeleted>(v).unwrap(), d);
    }
}
