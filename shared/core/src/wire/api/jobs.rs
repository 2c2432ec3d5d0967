//! Jobs in the public API: what a submit sends and gets back, how a job and the job list
//! look, and the filters of the list, the audit log and an output download.

use crate::wire::history::StoredJob;
use crate::wire::job::JobRecord;
use crate::wire::output::OutputStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The body of `POST /api/v1/jobs` (and of `tw.api.jobs.submit`, and the `job` of a socket
/// `submit`). At most one target: `channel` (default `default`), `instance`,
/// `all_instances` or `labels`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub command: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Value>,
    /// Any instance serving this channel (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Exactly this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Uuid>,
    /// One job on every instance offering the command.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_instances: bool,
    /// One job on every instance whose labels include all of these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Run at (not before) this instant: the request becomes a one-shot schedule of the
    /// caller, and the job reads as `scheduled` until it is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
}

/// A submit body, for messages that answer a bad one (it reads as a [`SubmitRequest`]).
pub const SUBMIT_EXAMPLE: &str = r#"{"command": "hello", "params": {}}"#;

/// The answer to a submit that fanned out to several instances (`all_instances`, `labels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    pub group_id: Uuid,
    pub jobs: Vec<JobRecord>,
}

/// The state a delayed job shows until it is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduledState {
    Scheduled,
}

/// A delayed job (`not_before`) that waits for its time: what `GET /api/v1/jobs/{id}` shows
/// until it is queued, and the `scheduled` list of `GET /api/v1/jobs`. It has no record in
/// `tw_jobs` yet; its one-shot schedule holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledJob {
    /// The id its job will have.
    pub job_id: Uuid,
    pub command: String,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    pub requested_by: String,
    pub state: ScheduledState,
    /// The instant it is queued at (not before).
    pub not_before: DateTime<Utc>,
    /// The one-shot schedule that will queue it.
    pub schedule_id: Uuid,
    /// Always null: it is not queued yet.
    pub queued_at: Option<DateTime<Utc>>,
}

/// What a submit answers: the job, the jobs of a fan-out, or a delayed job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Submitted {
    Group(GroupView),
    Delayed(ScheduledJob),
    One(JobRecord),
}

impl Submitted {
    /// The ids of the submitted jobs (one, or the group's in id order).
    pub fn job_ids(&self) -> Vec<Uuid> {
        match self {
            Submitted::Group(g) => g.jobs.iter().map(|r| r.spec.job_id).collect(),
            Submitted::Delayed(d) => vec![d.job_id],
            Submitted::One(r) => vec![r.spec.job_id],
        }
    }
}

/// `GET /api/v1/jobs/{id}` (and `tw.api.jobs.get`): the job's record with what only the
/// audit store keeps, or a delayed job that waits for its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobView {
    Scheduled(ScheduledJob),
    Job(Box<StoredJob>),
}

/// `GET /api/v1/jobs`: one page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<StoredJob>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Delayed jobs still waiting for their time, soonest first (first page only, and only
    /// without filters on state, instance or time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduled: Vec<ScheduledJob>,
}

// The filters of `GET /api/v1/jobs` and `GET /api/v1/audit` (query strings) and of
// `tw.api.jobs.list` and `tw.api.audit.list` (payloads) are the audit store's own queries,
// `JobQuery` and `AuditQuery` (`wire::history`): the gateway narrows them by the caller's
// rights and passes them on.

/// How `GET /api/v1/jobs/{id}/output` writes the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// The bytes as the job wrote them.
    Text,
    /// One JSON line per chunk: `{"seq","stream","data"}` (base64), streams kept apart.
    Ndjson,
}

/// The query of `GET /api/v1/jobs/{id}/output`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputOptions {
    /// `text` or `ndjson` (default: `text`, or `ndjson` for `Accept: application/x-ndjson`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Only this stream (`stdout`, `stderr` or `system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<OutputStream>,
}

/// The query of `GET /api/v1/jobs/{id}/stream`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// The first chunk to send (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::job::{JobSpec, Target, Via};
    use serde_json::json;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn at() -> DateTime<Utc> {
        "2026-01-02T03:04:05Z".parse().unwrap()
    }

    fn record(n: u128) -> JobRecord {
        JobRecord::queued(
            JobSpec::new(
                "hello",
                Target::Channel("default".into()),
                "alice",
                Via::Http,
            )
            .with_id(id(n))
            .queued_at(at()),
        )
    }

    fn delayed() -> ScheduledJob {
        ScheduledJob {
            job_id: id(1),
            command: "hello".into(),
            params: BTreeMap::from([("name".into(), json!("Ada"))]),
            requested_by: "alice".into(),
            state: ScheduledState::Scheduled,
            not_before: at(),
            schedule_id: id(2),
            queued_at: None,
        }
    }

    #[test]
    fn submit_request_json_is_pinned() {
        let r = SubmitRequest {
            command: "hello".into(),
            params: BTreeMap::from([("name".into(), json!("Ada"))]),
            labels: BTreeMap::from([("site".into(), "a".into())]),
            not_before: Some(at()),
            ..Default::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"command": "hello", "params": {"name": "Ada"}, "labels": {"site": "a"},
                   "not_before": "2026-01-02T03:04:05Z"})
        );
        assert_eq!(serde_json::from_value::<SubmitRequest>(v).unwrap(), r);
        serde_json::from_str::<SubmitRequest>(SUBMIT_EXAMPLE).unwrap();
        let e = serde_json::from_value::<SubmitRequest>(json!({"command": "x", "user": "eve"}))
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `user`"), "{e}");
    }

    #[test]
    fn scheduled_job_json_is_pinned() {
        let v = serde_json::to_value(delayed()).unwrap();
        assert_eq!(
            v,
            json!({"job_id": "00000000-0000-0000-0000-000000000001", "command": "hello",
                   "params": {"name": "Ada"}, "requested_by": "alice", "state": "scheduled",
                   "not_before": "2026-01-02T03:04:05Z",
                   "schedule_id": "00000000-0000-0000-0000-000000000002", "queued_at": null})
        );
        assert_eq!(
            serde_json::from_value::<ScheduledJob>(v).unwrap(),
            delayed()
        );
    }

    #[test]
    fn submitted_is_a_record_a_group_or_a_delayed_job() {
        let one = Submitted::One(record(7));
        let v = serde_json::to_value(&one).unwrap();
        assert_eq!(v, serde_json::to_value(record(7)).unwrap());
        assert_eq!(serde_json::from_value::<Submitted>(v).unwrap(), one);

        let group = Submitted::Group(GroupView {
            group_id: id(9),
            jobs: vec![record(7), record(8)],
        });
        let v = serde_json::to_value(&group).unwrap();
        assert_eq!(v["group_id"], json!("00000000-0000-0000-0000-000000000009"));
        assert_eq!(
            v["jobs"][1]["job_id"],
            json!("00000000-0000-0000-0000-000000000008")
        );
        assert_eq!(serde_json::from_value::<Submitted>(v).unwrap(), group);
        assert_eq!(group.job_ids(), [id(7), id(8)]);

        let d = Submitted::Delayed(delayed());
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["state"], json!("scheduled"));
        assert_eq!(serde_json::from_value::<Submitted>(v).unwrap(), d);
        assert_eq!(d.job_ids(), [id(1)]);
    }

    #[test]
    fn job_view_is_a_stored_job_or_a_delayed_job() {
        let mut stored = StoredJob::live(record(3));
        stored.pid = Some(42);
        let v = serde_json::to_value(JobView::Job(Box::new(stored.clone()))).unwrap();
        assert_eq!(v["pid"], json!(42));
        assert_eq!(v["state"], json!("queued"));
        assert_eq!(
            serde_json::from_value::<JobView>(v).unwrap(),
            JobView::Job(Box::new(stored))
        );
        let v = serde_json::to_value(JobView::Scheduled(delayed())).unwrap();
        assert_eq!(
            serde_json::from_value::<JobView>(v).unwrap(),
            JobView::Scheduled(delayed())
        );
    }

    #[test]
    fn job_list_json_is_pinned() {
        let page = JobList {
            jobs: vec![StoredJob::live(record(3))],
            next: Some("c1".into()),
            scheduled: vec![delayed()],
        };
        let v = serde_json::to_value(&page).unwrap();
        assert_eq!(v["next"], json!("c1"));
        assert_eq!(
            v["jobs"][0]["job_id"],
            json!("00000000-0000-0000-0000-000000000003")
        );
        assert_eq!(v["scheduled"][0]["state"], json!("scheduled"));
        assert_eq!(serde_json::from_value::<JobList>(v).unwrap(), page);
        let last = JobList {
            jobs: Vec::new(),
            next: None,
            scheduled: Vec::new(),
        };
        assert_eq!(serde_json::to_value(&last).unwrap(), json!({"jobs": []}));
    }

    #[test]
    fn filters_json_is_pinned() {
        let o = OutputOptions {
            format: Some("ndjson".into()),
            stream: Some(OutputStream::Stderr),
        };
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            json!({"format": "ndjson", "stream": "stderr"})
        );
        assert_eq!(
            serde_json::to_value(StreamOptions { from_seq: Some(5) }).unwrap(),
            json!({"from_seq": 5})
        );
        assert_eq!(
            serde_json::to_value(OutputFormat::Ndjson).unwrap(),
            json!("ndjson")
        );
    }
}
