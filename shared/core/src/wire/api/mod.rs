//! The documents of the public API: request bodies and query filters, the answers (views) of
//! `/api/v1` and of the NATS API `tw.api.*` (the same documents through either door), and
//! every frame of the WebSocket and Server-Sent Events streams. The gateway writes them, the
//! `taskwire` command line reads them, and `services/gateway/console/src/types.ts` mirrors
//! them for the web console. `README.md` and `docs/protocol.md` describe each; every type has
//! a test pinning its JSON.
//!
//! - [`jobs`]: submit body and answer, job views and the job list, delayed jobs while they
//!   wait, the output options (the list filters are the audit store's `JobQuery` and
//!   `AuditQuery`).
//! - [`schedules`]: schedule bodies, views, fire history and preview.
//! - [`frames`]: socket and event-stream frames, and what a client sends on the multiplexed
//!   socket; [`binary`]: chunk frames as WebSocket binary messages.
//! - [`direct`]: following a job over NATS (`tw.api.jobs.follow`), and the auth callout's
//!   claims for direct NATS clients.
//! - here: errors, identity (`GET /api/v1/me`, permissions), commands, deletions.

pub mod binary;
pub mod direct;
pub mod frames;
pub mod jobs;
pub mod schedules;

pub use frames::{Frame, JobEnd, SocketOp};
pub use jobs::{
    GroupView, JobList, JobView, OutputFormat, OutputOptions, ScheduledJob, ScheduledState,
    StreamOptions, SubmitRequest, Submitted,
};
pub use schedules::{FireHistory, FirePreview, HistoryQuery, ScheduleInput, ScheduleList};
pub use schedules::{ScheduleState, ScheduleView};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The stable error codes of the API, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no credentials, or ones that do not authenticate.
    Unauthorized,
    /// 403: authenticated, and the ACL says no.
    Forbidden,
    /// 404: no such job, schedule or API path.
    NotFound,
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 400: the request cannot be read (body, query, path).
    InvalidRequest,
    /// 413: the body is larger than `max_body_bytes`.
    PayloadTooLarge,
    /// 422: parameters that the command's schema refuses.
    InvalidParams,
    /// 422: no serving instance can run it.
    NoInstance,
    /// 409: the request contradicts the state (a finished job, a reused key, a lost race).
    Conflict,
    /// 503: a part of the job system is not answering; try again.
    Unavailable,
    /// 500: a fault of the gateway itself.
    Internal,
}

impl ErrorCode {
    /// The code as the JSON says it (`not_found`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::InvalidParams => "invalid_params",
            ErrorCode::NoInstance => "no_instance",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status of answers with this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::InvalidRequest => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::InvalidParams | ErrorCode::NoInstance => 422,
            ErrorCode::Conflict => 409,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::InvalidRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::InvalidParams,
        ErrorCode::NoInstance,
        ErrorCode::Conflict,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];
}

/// What went wrong: a stable code and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}` (HTTP bodies and NATS
/// API replies alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A reply of the NATS API: `{"ok": <answer>}` or `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatsReply<T> {
    Ok(T),
    Error(ErrorDetail),
}

/// A permission per API verb, granted to roles in `[gateway.roles.<role>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Submit jobs (of the commands the role is allowed).
    Run,
    /// Read one's own jobs and their output.
    ReadOwn,
    /// Read anyone's jobs and their output.
    ReadAny,
    StopOwn,
    StopAny,
    KillOwn,
    KillAny,
    /// Delete finished jobs (one's own; anyone's with `read_any` too).
    Delete,
    ManageSchedules,
    ReadAudit,
    ReadInstances,
}

impl Permission {
    /// The name in configuration and answers (`read_own`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Run => "run",
            Permission::ReadOwn => "read_own",
            Permission::ReadAny => "read_any",
            Permission::StopOwn => "stop_own",
            Permission::StopAny => "stop_any",
            Permission::KillOwn => "kill_own",
            Permission::KillAny => "kill_any",
            Permission::Delete => "delete",
            Permission::ManageSchedules => "manage_schedules",
            Permission::ReadAudit => "read_audit",
            Permission::ReadInstances => "read_instances",
        }
    }

    pub const ALL: [Permission; 11] = [
        Permission::Run,
        Permission::ReadOwn,
        Permission::ReadAny,
        Permission::StopOwn,
        Permission::StopAny,
        Permission::KillOwn,
        Permission::KillAny,
        Permission::Delete,
        Permission::ManageSchedules,
        Permission::ReadAudit,
        Permission::ReadInstances,
    ];
}

/// `GET /api/v1/me`: who the token is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub user: String,
    pub roles: Vec<String>,
    pub super_user: bool,
    pub permissions: Vec<Permission>,
}

/// One element of `GET /api/v1/commands`: a command the caller may run, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandView {
    pub name: String,
    pub description: String,
    pub params: Vec<crate::catalog::ParamSpec>,
    pub channels: Vec<String>,
    pub instances: Vec<InstanceRef>,
}

/// An instance that offers a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRef {
    pub guid: Uuid,
    pub hostname: String,
}

/// The answer to a deletion (of a job or a schedule): what is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: Uuid,
}

/// Names one job in a NATS API request (`jobs.get`, `jobs.stop`, `jobs.kill`): the id as
/// text, so a malformed one is answered (and audited) as such.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobIdRef {
    pub job_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_json_is_pinned() {
        let e = ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::PayloadTooLarge,
                message: "send less".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": "payload_too_large", "message": "send less"}})
        );
        assert_eq!(serde_json::from_value::<ErrorBody>(v).unwrap(), e);
        let statuses: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.http_status()).collect();
        assert_eq!(
            statuses,
            [401, 403, 404, 405, 400, 413, 422, 422, 409, 503, 500]
        );
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
        }
        let names: Vec<serde_json::Value> = ErrorCode::ALL
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "unauthorized",
                "forbidden",
                "not_found",
                "method_not_allowed",
                "invalid_request",
                "payload_too_large",
                "invalid_params",
                "no_instance",
                "conflict",
                "unavailable",
                "internal"
            ]
        );
    }

    #[test]
    fn nats_reply_json_is_pinned() {
        let ok: NatsReply<Deleted> = NatsReply::Ok(Deleted {
            deleted: Uuid::nil(),
        });
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"ok": {"deleted": "00000000-0000-0000-0000-000000000000"}})
        );
        let err: NatsReply<Deleted> = NatsReply::Error(ErrorDetail {
            code: ErrorCode::Forbidden,
            message: "no".into(),
        });
        let v = serde_json::to_value(&err).unwrap();
        assert_eq!(v, json!({"error": {"code": "forbidden", "message": "no"}}));
        assert_eq!(
            serde_json::from_value::<NatsReply<Deleted>>(v).unwrap(),
            err
        );
    }

    #[test]
    fn me_and_permissions_json_is_pinned() {
        let me = Me {
            user: "alice".into(),
            roles: vec!["ops".into()],
            super_user: false,
            permissions: vec![Permission::Run, Permission::ReadOwn],
        };
        let v = serde_json::to_value(&me).unwrap();
        assert_eq!(
            v,
            json!({"user": "alice", "roles": ["ops"], "super_user": false,
                   "permissions": ["run", "read_own"]})
        );
        assert_eq!(serde_json::from_value::<Me>(v).unwrap(), me);
        for p in Permission::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), json!(p.as_str()));
        }
    }

    #[test]
    fn command_view_and_deleted_json_is_pinned() {
        let c = CommandView {
            name: "hello".into(),
            description: "Greets".into(),
            params: Vec::new(),
            channels: vec!["default".into()],
            instances: vec![InstanceRef {
                guid: Uuid::nil(),
                hostname: "web-1".into(),
            }],
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            json!({"name": "hello", "description": "Greets", "params": [],
                   "channels": ["default"],
                   "instances": [{"guid": "00000000-0000-0000-0000-000000000000", "hostname": "web-1"}]})
        );
        assert_eq!(serde_json::from_value::<CommandView>(v).unwrap(), c);
        let d = Deleted {
            deleted: Uuid::nil(),
        };
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            json!({"deleted": "00000000-0000-0000-0000-000000000000"})
        );
    }
}
