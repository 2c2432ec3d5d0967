//! The frames of the output streams: what the server sends on `GET /api/v1/jobs/{id}/stream`
//! (WebSocket text frames, or the `data` of Server-Sent Events) and on the multiplexed socket
//! `GET /api/v1/ws`, and what a client sends on the multiplexed socket.

use super::ErrorDetail;
use super::jobs::Submitted;
use crate::wire::history::StoredJob;
use crate::wire::job::JobState;
use crate::wire::kill::KillReply;
use crate::wire::output::OutputStream;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The WebSocket subprotocol the gateway answers with.
pub const WS_PROTOCOL: &str = "taskwire";
/// Prefix of the subprotocol that carries a token, for browsers that cannot set headers:
/// `Sec-WebSocket-Protocol: taskwire, bearer.<token>`. A token never goes in the URL.
pub const WS_TOKEN_PROTOCOL: &str = "bearer.";
/// Close code of a viewer that fell too far behind; the reason names the `from_seq` to
/// resume from.
pub const CLOSE_SLOW: u16 = 4008;
/// Close code of a socket whose token no longer authenticates: sign in again.
pub const CLOSE_UNAUTHORIZED: u16 = 4001;

/// The Server-Sent Events names: `chunk` (id: the sequence; data: a [`Frame::Chunk`]),
/// `end` (data: a [`Frame::End`]), `slow` (data: [`slow_reason`]; the response ends),
/// `error` (data: an [`ErrorDetail`]; the response ends).
pub mod sse {
    pub const CHUNK: &str = "chunk";
    pub const END: &str = "end";
    pub const SLOW: &str = "slow";
    pub const ERROR: &str = "error";
}

/// Why a slow viewer was cut off, with where to resume (WebSocket close reason, SSE `slow`).
pub fn slow_reason(from_seq: u64) -> String {
    format!("viewer too slow; reconnect with from_seq={from_seq}")
}

/// How a job ended, as its stream's last frame tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEnd {
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The job's last chunk: a client holding chunks `1..=last_seq` has the whole log.
    pub last_seq: u64,
}

/// Every frame the server sends, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// One output chunk; `data` is base64 of its bytes.
    Chunk {
        job_id: Uuid,
        seq: u64,
        stream: OutputStream,
        #[serde(with = "crate::wire::b64")]
        data: Bytes,
    },
    /// The job's end, after its last chunk (`job_id` on the multiplexed socket).
    End {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_id: Option<Uuid>,
        #[serde(flatten)]
        end: JobEnd,
    },
    /// The answer to a `submit`.
    Submitted {
        #[serde(rename = "ref")]
        reference: String,
        job: Box<Submitted>,
    },
    /// The answer to a `stop` or `kill`.
    Control {
        #[serde(rename = "ref")]
        reference: String,
        reply: KillReply,
    },
    /// `watch_jobs` is in place: changes from now on follow as `job` frames.
    Watching,
    /// A job the caller may read changed (its live record).
    Job { job: Box<StoredJob> },
    /// A job the caller was shown was deleted.
    JobRemoved { job_id: Uuid },
    /// That subscription was dropped for falling behind; subscribe again from `from_seq`.
    Slow { job_id: Uuid, from_seq: u64 },
    /// An operation failed: it names the `ref`, the `job_id` or the `op` it answers.
    Error {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<String>,
        error: ErrorDetail,
    },
}

impl Frame {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        let hint = match self {
            // base64 of the data and the other fields, so the text is allocated once at its
            // size (a chunk's frame may be kept for every viewer)
            Frame::Chunk { data, .. } => data.len().div_ceil(3) * 4 + 160,
            _ => 128,
        };
        let mut out = Vec::with_capacity(hint);
        // A frame holds only strings, numbers and maps with string keys: it always encodes.
        if serde_json::to_writer(&mut out, self).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// An error answering the operation with reference `r`.
    pub fn error_for_ref(r: &str, error: ErrorDetail) -> Self {
        Frame::Error {
            reference: Some(r.to_string()),
            job_id: None,
            op: None,
            error,
        }
    }

    /// An error about the job `job_id` (as the client named it).
    pub fn error_for_job(job_id: &str, error: ErrorDetail) -> Self {
        Frame::Error {
            reference: None,
            job_id: Some(job_id.to_string()),
            op: None,
            error,
        }
    }

    /// An error of operation `op` (`watch_jobs`, or `session` when the token expired).
    pub fn error_for_op(op: &str, error: ErrorDetail) -> Self {
        Frame::Error {
            reference: None,
            job_id: None,
            op: Some(op.to_string()),
            error,
        }
    }
}

/// What a client sends on the multiplexed socket, tagged by `op`. Each operation is checked
/// and audited like its REST twin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum SocketOp {
    /// Submit a job: `job` is the body of `POST /api/v1/jobs` (read, and refused with the
    /// `ref`, by the same rules).
    Submit {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        job: Value,
    },
    /// Follow a job's output from `from_seq` (default 1).
    Subscribe {
        job_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_seq: Option<u64>,
    },
    Unsubscribe {
        job_id: String,
    },
    Stop {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        job_id: String,
    },
    Kill {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        job_id: String,
    },
    /// Every later change of a job the caller may read.
    WatchJobs {},
    UnwatchJobs {},
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::api::ErrorCode;
    use crate::wire::job::{JobRecord, JobSpec, Target, Via};
    use crate::wire::kill::KillOutcome;
    use serde_json::json;

    const JOB: &str = "00000000-0000-0000-0000-000000000007";

    fn job() -> Uuid {
        Uuid::parse_str(JOB).unwrap()
    }

    fn round_trip(f: &Frame, want: Value) {
        let v = serde_json::to_value(f).unwrap();
        assert_eq!(v, want);
        assert_eq!(&serde_json::from_value::<Frame>(v).unwrap(), f);
        assert_eq!(serde_json::from_str::<Value>(&f.to_json()).unwrap(), want);
    }

    #[test]
    fn chunk_and_end_frames_are_pinned() {
        round_trip(
            &Frame::Chunk {
                job_id: job(),
                seq: 3,
                stream: OutputStream::Stdout,
                data: Bytes::from_static(b"\xffhi\n"),
            },
            json!({"type": "chunk", "job_id": JOB, "seq": 3, "stream": "stdout", "data": "/2hpCg=="}),
        );
        let end = JobEnd {
            state: JobState::Failed,
            exit_code: Some(3),
            signal: None,
            result: Some(json!({"rows": 2})),
            error: Some("exited with code 3".into()),
            last_seq: 3,
        };
        round_trip(
            &Frame::End {
                job_id: Some(job()),
                end: end.clone(),
            },
            json!({"type": "end", "job_id": JOB, "state": "failed", "exit_code": 3,
                   "result": {"rows": 2}, "error": "exited with code 3", "last_seq": 3}),
        );
        round_trip(
            &Frame::End {
                job_id: None,
                end: JobEnd {
                    state: JobState::Succeeded,
                    exit_code: Some(0),
                    signal: None,
                    result: None,
                    error: None,
                    last_seq: 12,
                },
            },
            json!({"type": "end", "state": "succeeded", "exit_code": 0, "last_seq": 12}),
        );
    }

    #[test]
    fn socket_answer_frames_are_pinned() {
        let record = JobRecord::queued(
            JobSpec::new(
                "hello",
                Target::Channel("default".into()),
                "alice",
                Via::Websocket,
            )
            .with_id(job())
            .queued_at("2026-01-02T03:04:05Z".parse().unwrap()),
        );
        let f = Frame::Submitted {
            reference: "r1".into(),
            job: Box::new(Submitted::One(record.clone())),
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["type"], json!("submitted"));
        assert_eq!(v["ref"], json!("r1"));
        assert_eq!(v["job"]["job_id"], json!(JOB));
        assert_eq!(serde_json::from_value::<Frame>(v).unwrap(), f);

        let reply = KillReply {
            job_id: job(),
            outcome: KillOutcome::Cancelled,
            state: Some(JobState::Cancelled),
            signals: vec![],
            survivors: None,
            message: "cancelled".into(),
        };
        round_trip(
            &Frame::Control {
                reference: "r2".into(),
                reply,
            },
            json!({"type": "control", "ref": "r2", "reply": {"job_id": JOB, "outcome": "cancelled",
                   "state": "cancelled", "message": "cancelled"}}),
        );
        round_trip(&Frame::Watching, json!({"type": "watching"}));
        let f = Frame::Job {
            job: Box::new(StoredJob::live(record)),
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["type"], json!("job"));
        assert_eq!(v["job"]["state"], json!("queued"));
        assert_eq!(serde_json::from_value::<Frame>(v).unwrap(), f);
        round_trip(
            &Frame::JobRemoved { job_id: job() },
            json!({"type": "job_removed", "job_id": JOB}),
        );
        round_trip(
            &Frame::Slow {
                job_id: job(),
                from_seq: 9,
            },
            json!({"type": "slow", "job_id": JOB, "from_seq": 9}),
        );
    }

    #[test]
    fn error_frames_name_what_they_answer() {
        let e = ErrorDetail {
            code: ErrorCode::Unauthorized,
            message: "sign in again".into(),
        };
        round_trip(
            &Frame::error_for_op("session", e.clone()),
            json!({"type": "error", "op": "session", "error": {"code": "unauthorized", "message": "sign in again"}}),
        );
        round_trip(
            &Frame::error_for_ref("r3", e.clone()),
            json!({"type": "error", "ref": "r3", "error": {"code": "unauthorized", "message": "sign in again"}}),
        );
        round_trip(
            &Frame::error_for_job("not-a-uuid", e),
            json!({"type": "error", "job_id": "not-a-uuid", "error": {"code": "unauthorized", "message": "sign in again"}}),
        );
        assert_eq!(slow_reason(4), "viewer too slow; reconnect with from_seq=4");
    }

    #[test]
    fn socket_ops_json_is_pinned() {
        let ops = [
            (
                json!({"op": "submit", "ref": "r1", "job": {"command": "hello"}}),
                SocketOp::Submit {
                    reference: Some("r1".into()),
                    job: json!({"command": "hello"}),
                },
            ),
            (
                json!({"op": "subscribe", "job_id": JOB, "from_seq": 3}),
                SocketOp::Subscribe {
                    job_id: JOB.into(),
                    from_seq: Some(3),
                },
            ),
            (
                json!({"op": "unsubscribe", "job_id": JOB}),
                SocketOp::Unsubscribe { job_id: JOB.into() },
            ),
            (
                json!({"op": "stop", "ref": "r2", "job_id": JOB}),
                SocketOp::Stop {
                    reference: Some("r2".into()),
                    job_id: JOB.into(),
                },
            ),
            (
                json!({"op": "kill", "job_id": JOB}),
                SocketOp::Kill {
                    reference: None,
                    job_id: JOB.into(),
                },
            ),
            (json!({"op": "watch_jobs"}), SocketOp::WatchJobs {}),
            (json!({"op": "unwatch_jobs"}), SocketOp::UnwatchJobs {}),
        ];
        for (v, op) in ops {
            assert_eq!(serde_json::from_value::<SocketOp>(v.clone()).unwrap(), op);
            assert_eq!(serde_json::to_value(&op).unwrap(), v);
        }
        assert!(serde_json::from_value::<SocketOp>(json!({"op": "launch"})).is_err());
        assert!(
            serde_json::from_value::<SocketOp>(json!({"op": "kill", "job_id": JOB, "x": 1}))
                .is_err()
        );
    }
}
