//! The audit store's answers over NATS (`tw.store.*`, request/reply, asked by gateways):
//! job history, one job, its stored output and the audit log. Every answer is a
//! [`StoreReply`]: the value, or an error saying what was wrong.

use super::audit::AuditEvent;
use super::event::TreeReport;
use super::job::{JobRecord, JobState};
use super::output::OutputStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Query verb: a page of job history.
pub const STORE_JOBS_LIST: &str = "jobs.list";
/// Query verb: one job's stored record.
pub const STORE_JOBS_GET: &str = "jobs.get";
/// Query verb: a page of one job's stored output.
pub const STORE_JOBS_OUTPUT: &str = "jobs.output";
/// Query verb: a page of the audit log.
pub const STORE_AUDIT_LIST: &str = "audit.list";

/// The most rows one page may hold.
pub const MAX_PAGE: u32 = 500;
/// The most output bytes one output page carries (base64 makes the message about a third
/// bigger; NATS's default message limit is 1 MiB).
pub const MAX_OUTPUT_PAGE: u32 = 512 * 1024;

/// Filters and paging of job history, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Uuid>,
    /// Jobs queued at or after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Jobs queued before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Rows per page, 1 to [`MAX_PAGE`] (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A job as the audit store knows it: the live record's fields plus what only the store keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJob {
    #[serde(flatten)]
    pub record: JobRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_truncated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeReport>,
}

impl StoredJob {
    /// A live record with nothing only the store knows.
    pub fn live(record: JobRecord) -> Self {
        Self {
            record,
            argv: None,
            pid: None,
            duration_ms: None,
            ended_at: None,
            peak_rss_bytes: None,
            output_bytes: None,
            last_seq: None,
            output_truncated: None,
            result: None,
            tree: None,
        }
    }
}

/// One page of job history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<StoredJob>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Names one job (`jobs.get`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    pub job_id: Uuid,
}

/// A page of one job's stored output, from `from_seq` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    pub job_id: Uuid,
    /// The first chunk wanted (1-based; default 1).
    #[serde(default = "first_seq")]
    pub from_seq: u64,
    /// Stop adding chunks past this many bytes (at least one chunk is always sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u32>,
}

fn first_seq() -> u64 {
    1
}

/// One stored output chunk; `data` is base64 (standard alphabet, padded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredChunk {
    pub seq: u64,
    pub stream: OutputStream,
    #[serde(with = "super::b64")]
    pub data: Vec<u8>,
}

/// A page of output chunks in sequence order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputPage {
    pub chunks: Vec<StoredChunk>,
    /// Ask again from this sequence number; absent when no more chunks are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_seq: Option<u64>,
}

/// Filters and paging of the audit log, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// An exact action (`jobs.kill`) or a family (`jobs.`, ending with a dot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A page of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Every answer of the audit store: `{"ok": ...}` or `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreReply<T> {
    Ok(T),
    Error(StoreError),
}

/// Why the audit store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreError {
    pub code: StoreErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreErrorCode {
    /// The query itself is wrong (bad cursor, bad limit, malformed JSON).
    InvalidQuery,
    /// No such job in the store.
    NotFound,
    /// The database did not answer; ask again later.
    Unavailable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_query_json_is_pinned() {
        let q = JobQuery {
            user: Some("alice".into()),
            state: Some(JobState::Failed),
            since: Some("2026-01-02T03:04:05Z".parse().unwrap()),
            limit: Some(20),
            ..Default::default()
        };
        let v = serde_json::to_value(&q).unwrap();
        assert_eq!(
            v,
            json!({"user": "alice", "state": "failed", "since": "2026-01-02T03:04:05Z", "limit": 20})
        );
        assert_eq!(serde_json::from_value::<JobQuery>(v).unwrap(), q);
        assert!(serde_json::from_value::<JobQuery>(json!({"usr": "x"})).is_err());
    }

    #[test]
    fn stored_job_flattens_the_record() {
        let id = Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap();
        let mut record = JobRecord::queued(super::super::job::tests_support::spec(id));
        record.state = JobState::Succeeded;
        record.exit_code = Some(0);
        let j = StoredJob {
            record,
            argv: Some(vec!["/bin/report".into(), "7".into()]),
            pid: Some(42),
            duration_ms: Some(15),
            ended_at: None,
            peak_rss_bytes: Some(4096),
            output_bytes: Some(12),
            last_seq: Some(2),
            output_truncated: Some(false),
            result: None,
            tree: None,
        };
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["job_id"], json!("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d"));
        assert_eq!(v["state"], json!("succeeded"));
        assert_eq!(v["argv"], json!(["/bin/report", "7"]));
        assert_eq!(v["peak_rss_bytes"], json!(4096));
        assert!(v.get("result").is_none());
        assert_eq!(serde_json::from_value::<StoredJob>(v).unwrap(), j);
    }

    #[test]
    fn output_page_json_is_pinned() {
        let p = OutputPage {
            chunks: vec![StoredChunk {
                seq: 1,
                stream: OutputStream::Stderr,
                data: b"\xffok\n".to_vec(),
            }],
            next_seq: Some(2),
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            json!({"chunks": [{"seq": 1, "stream": "stderr", "data": "/29rCg=="}], "next_seq": 2})
        );
        assert_eq!(serde_json::from_value::<OutputPage>(v).unwrap(), p);
        let q: OutputQuery =
            serde_json::from_value(json!({"job_id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d"}))
                .unwrap();
        assert_eq!(q.from_seq, 1);
    }

    #[test]
    fn store_reply_json_is_pinned() {
        let ok: StoreReply<JobRef> = StoreReply::Ok(JobRef {
            job_id: Uuid::nil(),
        });
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"ok": {"job_id": "00000000-0000-0000-0000-000000000000"}})
        );
        let err: StoreReply<JobRef> = StoreReply::Error(StoreError {
            code: StoreErrorCode::NotFound,
            message: "job 1 is not in the audit store".into(),
        });
        let v = serde_json::to_value(&err).unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": "not_found", "message": "job 1 is not in the audit store"}})
        );
        assert_eq!(
            serde_json::from_value::<StoreReply<JobRef>>(v).unwrap(),
            err
        );
    }

    #[test]
    fn audit_query_json_is_pinned() {
        let q = AuditQuery {
            action: Some("jobs.".into()),
            allowed: Some(false),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"action": "jobs.", "allowed": false})
        );
    }
}
