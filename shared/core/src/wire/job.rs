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
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 9] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Stopped,
        JobState::Killed,
        JobState::TimedOut,
        JobState::Lost,
        JobState::Cancelled,
    ];

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

impl JobSpec {
    /// A first attempt of `command` (no parameters) on `target`, asked by `requested_by`
    /// through `via`, queued now, with a fresh time-ordered id. The `with_*` methods set the
    /// rest.
    pub fn new(
        command: impl Into<String>,
        target: Target,
        requested_by: impl Into<String>,
        via: Via,
    ) -> Self {
        Self {
            job_id: Uuid::now_v7(),
            command: command.into(),
            params: BTreeMap::new(),
            target,
            requested_by: requested_by.into(),
            via,
            queued_at: Utc::now(),
            attempt: 1,
            group_id: None,
            retry_of: None,
        }
    }

    /// The same spec with these parameter values.
    pub fn with_params(mut self, params: BTreeMap<String, Value>) -> Self {
        self.params = params;
        self
    }

    /// The same spec under another id (an id derived from an idempotency key or a fire).
    pub fn with_id(mut self, job_id: Uuid) -> Self {
        self.job_id = job_id;
        self
    }

    /// The same spec as one job of a group fanned out to several instances.
    pub fn in_group(mut self, group_id: Option<Uuid>) -> Self {
        self.group_id = group_id;
        self
    }

    /// The same spec queued at `at`.
    pub fn queued_at(mut self, at: DateTime<Utc>) -> Self {
        self.queued_at = at;
        self
    }
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
    /// Set on the record of a delayed job cancelled before its time: it was never queued
    /// and never dispatched (a fire of its schedule that comes after makes no job).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled_before_queued: bool,
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
            cancelled_before_queued: false,
            updated_at,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use serde_json::json;

    pub(crate) fn spec(job_id: Uuid) -> JobSpec {
        JobSpec::new(
            "report",
            Target::Channel("default".into()),
            "alice",
            Via::Http,
        )
        .with_id(job_id)
        .with_params(BTreeMap::from([("days".into(), json!(7))]))
        .queued_at("2026-01-02T03:04:05Z".parse().unwrap())
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
    fn a_delayed_job_cancelled_before_its_time_is_marked() {
        let mut r = JobRecord::queued(sample_spec());
        r.state = JobState::Cancelled;
        r.ended_by = Some("bob".into());
        r.cancelled_before_queued = true;
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["cancelled_before_queued"], json!(true));
        assert_eq!(v["state"], json!("cancelled"));
        assert_eq!(serde_json::from_value::<JobRecord>(v).unwrap(), r);
        // Absent on every other record, and read as false from records written before it.
        let plain = serde_json::to_value(JobRecord::queued(sample_spec())).unwrap();
        assert!(plain.get("cancelled_before_queued").is_none());
        assert!(
            !serde_json::from_value::<JobRecord>(plain)
                .unwrap()
                .cancelled_before_queued
        );
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
