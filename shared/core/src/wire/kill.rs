//! Stop, kill and cancel: `tw.kill.request` (gateway to kill broker) and `tw.exec.<guid>.kill`
//! (kill broker to the one instance running the job), both request/reply with these payloads.

use super::job::JobState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Graceful stop (stop signal, grace, SIGKILL; final state `stopped`) or escalating kill
/// (the catalog's ladder, default SIGINT, SIGTERM, SIGKILL; final state `killed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillMode {
    Stop,
    Kill,
}

/// A request to stop or kill a job (or cancel it while queued).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillRequest {
    pub job_id: Uuid,
    pub mode: KillMode,
    /// The authenticated user who asked (written into the job's log).
    pub requested_by: String,
    pub at: DateTime<Utc>,
    /// The instance the gateway saw running the job: the broker may route there without
    /// reading the record again (a running job never goes back to queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Uuid>,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillOutcome {
    /// The running job's process tree was signalled and is gone.
    Signalled,
    /// The job was still queued and will never start.
    Cancelled,
    /// The job had already ended.
    AlreadyFinished,
    /// The instance does not run this job (any more).
    NotRunningHere,
    /// The instance did not answer; if it stays silent the job becomes `lost`.
    InstanceUnreachable,
    NoSuchJob,
}

/// The answer to a [`KillRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillReply {
    pub job_id: Uuid,
    pub outcome: KillOutcome,
    /// The job's state after the request, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Signals sent, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<String>,
    /// Processes of the tree still alive afterwards (0 when the tree is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survivors: Option<u32>,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kill_json_is_pinned() {
        let job = Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap();
        let req = KillRequest {
            job_id: job,
            mode: KillMode::Kill,
            requested_by: "root".into(),
            at: "2026-01-02T03:04:05Z".parse().unwrap(),
            instance: None,
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(
            v,
            json!({"job_id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d", "mode": "kill",
                   "requested_by": "root", "at": "2026-01-02T03:04:05Z"})
        );
        assert_eq!(serde_json::from_value::<KillRequest>(v).unwrap(), req);
        let reply = KillReply {
            job_id: job,
            outcome: KillOutcome::Signalled,
            state: Some(JobState::Killed),
            signals: vec!["SIGINT".into(), "SIGTERM".into()],
            survivors: Some(0),
            message: "killed".into(),
        };
        let v = serde_json::to_value(&reply).unwrap();
        assert_eq!(
            v,
            json!({"job_id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d", "outcome": "signalled",
                   "state": "killed", "signals": ["SIGINT", "SIGTERM"], "survivors": 0,
                   "message": "killed"})
        );
        assert_eq!(serde_json::from_value::<KillReply>(v).unwrap(), reply);
    }
}
