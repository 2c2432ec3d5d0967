//! A job: what was asked (`JobSpec`, the dispatch payload) and where it stands (`JobRecord`,
//! the value in the `tw_jobs` bucket).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Where a job should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Any executor serving this channel.
    Channel(String),
    /// Exactly this instance.
    Instance(Uuid),
}

/// Which door a request came through, recorded for audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Http,
    Websocket,
    Nats,
    Schedule,
}

/// Lifecycle state. `queued -> running -> succeeded | failed | stopped | killed | timed_out |
/// lost`, and `queued -> cancelled`. Terminal states are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Stopped,
    Killed,
    TimedOut,
    Lost,
    Cancelled,
}

impl JobState {
    /// True once nothing can change the state any more.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// The wire name (`timed_out`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Stopped => "stopped",
            JobState::Killed => "killed",
            JobState::TimedOut => "timed_out",
            JobState::Lost => "lost",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was asked: the payload of a dispatch message, and the fixed part of a job record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// UUID v7, so ids sort by submission time. Also the dispatch message id (dedup).
    pub job_id: Uuid,
    /// Catalog command name.
    pub command: String,
    /// Parameter values as submitted (validated again by the executor against its catalog).
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    pub target: Target,
    /// The authenticated user who asked; never taken from a request body.
    pub requested_by: String,
    pub via: Via,
    pub queued_at: DateTime<Utc>,
    /// 1 for the first attempt; a retry is a new job with a higher attempt.
    #[serde(default = "one")]
    pub attempt: u32,
    /// Set when one request fanned out to several instances: all share the group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Uuid>,
    /// Set on a retry: the job this attempt repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<Uuid>,
}

fn one() -> u32 {
    1
}

/// Where a job stands: the value of key `<job_id>` in the `tw_jobs` bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    #[serde(flatten)]
    pub spec: JobSpec,
    pub state: JobState,
    /// The instance that claimed the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal name (`SIGKILL`) when the process was ended by a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Why the job failed or ended early, in words for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who stopped, killed or cancelled the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl JobRecord {
    /// A fresh record in state `queued`.
    pub fn queued(spec: JobSpec) -> Self {
        let updated_at = spec.queued_at;
        Self {
            spec,
            state: JobState::Queued,
            instance: None,
            hostname: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            signal: None,
            error: None,
            ended_by: None,
            updated_at,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use serde_json::json;

    pub(crate) fn spec(job_id: Uuid) -> JobSpec {
        JobSpec {
            job_id,
            command: "report".into(),
            params: BTreeMap::from([("days".into(), json!(7))]),
            target: Target::Channel("default".into()),
            requested_by: "alice".into(),
            via: Via::Http,
            queued_at: "2026-01-02T03:04:05Z".parse().unwrap(),
            attempt: 1,
            group_id: None,
            retry_of: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_spec() -> JobSpec {
        tests_support::spec(Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap())
    }

    #[test]
    fn job_spec_json_is_pinned() {
        let v = serde_json::to_value(sample_spec()).unwrap();
        assert_eq!(
            v,
            json!({
                "job_id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d",
                "command": "report",
                "params": {"days": 7},
                "target": {"channel": "default"},
                "requested_by": "alice",
                "via": "http",
                "queued_at": "2026-01-02T03:04:05Z",
                "attempt": 1
            })
        );
        let back: JobSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back, sample_spec());
    }

    #[test]
    fn instance_target_json_is_pinned() {
        let t = Target::Instance(Uuid::parse_str("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f").unwrap());
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"instance": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"})
        );
    }

    #[test]
    fn job_record_json_is_pinned() {
        let mut r = JobRecord::queued(sample_spec());
        r.state = JobState::TimedOut;
        r.instance = Some(Uuid::parse_str("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f").unwrap());
        r.hostname = Some("web-1".into());
        r.signal = Some("SIGKILL".into());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({
                "job_id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d",
                "command": "report",
                "params": {"days": 7},
                "target": {"channel": "default"},
                "requested_by": "alice",
                "via": "http",
                "queued_at": "2026-01-02T03:04:05Z",
                "attempt": 1,
                "state": "timed_out",
                "instance": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
                "hostname": "web-1",
                "signal": "SIGKILL",
                "updated_at": "2026-01-02T03:04:05Z"
            })
        );
        assert_eq!(serde_json::from_value::<JobRecord>(v).unwrap(), r);
    }

    #[test]
    fn terminal_states() {
        assert!(!JobState::Queued.is_terminal());
        assert!(!JobState::Running.is_terminal());
        for s in [
            JobState::Succeeded,
            JobState::Failed,
            JobState::Stopped,
            JobState::Killed,
            JobState::TimedOut,
            JobState::Lost,
            JobState::Cancelled,
        ] {
            assert!(s.is_terminal());
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
    }
}
