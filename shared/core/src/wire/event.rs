//! Lifecycle events: subject `tw.evt.<job_id>`, captured by stream `TW_EVENTS` and consumed
//! durably by the services that keep the record (the audit store). Every job that reaches an executor ends with exactly one
//! terminal event (`exited`, `spawn_failed` or `rejected`).

use super::job::{JobSpec, JobState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One lifecycle event of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    /// The instance that published the event (absent for `queued`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Uuid>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The job was accepted and dispatched.
    Queued { spec: JobSpec },
    /// The process was spawned.
    Started {
        pid: u32,
        /// The argv actually executed, after parameter substitution.
        argv: Vec<String>,
        hostname: String,
        /// How the process tree is contained: its own cgroup or its own process group.
        tree: TreeMode,
    },
    /// The process ended (terminal).
    Exited {
        state: JobState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
        duration_ms: u64,
        /// Peak resident memory of the job's process (and its reaped descendants).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peak_rss_bytes: Option<u64>,
        /// Bytes the process wrote to stdout and stderr (including any beyond the cap).
        output_bytes: u64,
        /// Sequence number of the last output chunk: a reader that has chunks 1..=last_seq
        /// has the whole log.
        last_seq: u64,
        /// True when the command's output cap cut the stored log short.
        #[serde(default)]
        output_truncated: bool,
        /// The JSON response the job wrote to its result file, kept apart from the log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Who stopped or killed the job, when someone did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ended_by: Option<String>,
        /// What happened to the rest of the process tree when the job ended.
        tree: TreeReport,
    },
    /// The process could not be started (terminal, state `failed`).
    SpawnFailed { argv: Vec<String>, reason: String },
    /// The executor refused the job: unknown command, not on this channel, or a parameter that
    /// fails the catalog's rules (terminal, state `failed`).
    Rejected { reason: String },
    /// The job was cancelled while queued and never started (terminal, state `cancelled`).
    Cancelled { by: String },
    /// The job's instance stopped heartbeating, or restarted without it (terminal, state
    /// `lost`). Published by the kill broker's reaper or the restarted executor.
    Lost { reason: String },
}

impl EventKind {
    /// The state a job is in after this event.
    pub fn state(&self) -> JobState {
        match self {
            EventKind::Queued { .. } => JobState::Queued,
            EventKind::Started { .. } => JobState::Running,
            EventKind::Exited { state, .. } => *state,
            EventKind::SpawnFailed { .. } | EventKind::Rejected { .. } => JobState::Failed,
            EventKind::Cancelled { .. } => JobState::Cancelled,
            EventKind::Lost { .. } => JobState::Lost,
        }
    }
}

/// How a job's process tree is contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeMode {
    /// Its own cgroup v2: every descendant, even one that called `setsid`, is reached.
    Cgroup,
    /// Its own process group only: a descendant that left the group is out of reach.
    ProcessGroup,
}

/// What was left of the process tree when the job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeReport {
    pub mode: TreeMode,
    /// Processes of the tree still alive after the job's main process ended; they were sent
    /// SIGKILL.
    pub leftover: u32,
    /// Processes still alive after that SIGKILL (should be 0; reported, never assumed).
    pub survivors: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids() -> (Uuid, Uuid) {
        (
            Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap(),
            Uuid::parse_str("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f").unwrap(),
        )
    }

    #[test]
    fn started_json_is_pinned() {
        let (job, inst) = ids();
        let e = JobEvent {
            job_id: job,
            at: "2026-01-02T03:04:05Z".parse().unwrap(),
            instance: Some(inst),
            kind: EventKind::Started {
                pid: 77,
                argv: vec!["/bin/echo".into(), "hi".into()],
                hostname: "web-1".into(),
                tree: TreeMode::Cgroup,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({
                "job_id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d",
                "at": "2026-01-02T03:04:05Z",
                "instance": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
                "event": "started",
                "pid": 77,
                "argv": ["/bin/echo", "hi"],
                "hostname": "web-1",
                "tree": "cgroup"
            })
        );
        assert_eq!(serde_json::from_value::<JobEvent>(v).unwrap(), e);
    }

    #[test]
    fn exited_json_is_pinned() {
        let (job, inst) = ids();
        let e = JobEvent {
            job_id: job,
            at: "2026-01-02T03:04:05Z".parse().unwrap(),
            instance: Some(inst),
            kind: EventKind::Exited {
                state: JobState::Failed,
                exit_code: Some(3),
                signal: None,
                duration_ms: 1200,
                peak_rss_bytes: Some(1 << 20),
                output_bytes: 10,
                last_seq: 2,
                output_truncated: false,
                result: Some(json!({"rows": 5})),
                error: None,
                ended_by: None,
                tree: TreeReport {
                    mode: TreeMode::ProcessGroup,
                    leftover: 1,
                    survivors: 0,
                },
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({
                "job_id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d",
                "at": "2026-01-02T03:04:05Z",
                "instance": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
                "event": "exited",
                "state": "failed",
                "exit_code": 3,
                "duration_ms": 1200,
                "peak_rss_bytes": 1048576,
                "output_bytes": 10,
                "last_seq": 2,
                "output_truncated": false,
                "result": {"rows": 5},
                "tree": {"mode": "process_group", "leftover": 1, "survivors": 0}
            })
        );
        assert_eq!(serde_json::from_value::<JobEvent>(v).unwrap(), e);
        assert_eq!(e.kind.state(), JobState::Failed);
    }

    #[test]
    fn spawn_failed_and_rejected_json_is_pinned() {
        let (job, inst) = ids();
        let e = JobEvent {
            job_id: job,
            at: "2026-01-02T03:04:05Z".parse().unwrap(),
            instance: Some(inst),
            kind: EventKind::SpawnFailed {
                argv: vec!["/nope".into()],
                reason: "No such file or directory (os error 2)".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap()["event"],
            json!("spawn_failed")
        );
        let r = EventKind::Rejected {
            reason: "parameter 'days': must be at most 30".into(),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"event": "rejected", "reason": "parameter 'days': must be at most 30"})
        );
        assert_eq!(r.state(), JobState::Failed);
    }

    #[test]
    fn queued_carries_the_spec() {
        let (job, _) = ids();
        let spec = crate::wire::job::tests_support::spec(job);
        let e = JobEvent {
            job_id: job,
            at: spec.queued_at,
            instance: None,
            kind: EventKind::Queued { spec: spec.clone() },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], json!("queued"));
        assert_eq!(v["spec"]["command"], json!("report"));
        assert!(v.get("instance").is_none());
        assert_eq!(serde_json::from_value::<JobEvent>(v).unwrap(), e);
    }
}
