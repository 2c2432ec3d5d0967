//! The registry entry of one executor instance: key `<guid>` in bucket `tw_instances`,
//! rewritten every heartbeat. Entries expire, so an instance that stops beating disappears.

use crate::catalog::CommandInfo;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Used and total concurrency slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    pub used: u32,
    pub total: u32,
}

/// Whether the instance takes new jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    Serving,
    /// Finishing its running jobs, taking no new ones.
    Draining,
}

/// A job running on the instance right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningJob {
    pub job_id: Uuid,
    pub command: String,
    pub pid: u32,
    /// Current resident memory of the job's tree, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    pub started_at: DateTime<Utc>,
}

/// One heartbeat of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Persistent instance id (kept in the executor's state dir).
    pub guid: Uuid,
    pub hostname: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Channels this instance pulls jobs from.
    pub channels: Vec<String>,
    pub slots: Slots,
    /// Per-channel limits, for the channels that have one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channel_slots: BTreeMap<String, Slots>,
    pub jobs: Vec<RunningJob>,
    /// Resident memory of the executor process itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_rss_bytes: Option<u64>,
    pub version: String,
    pub status: InstanceStatus,
    /// `cgroup` or `process_group`: how job trees are contained here.
    pub tree: crate::wire::TreeMode,
    /// What can run here.
    pub catalog: Vec<CommandInfo>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ParamKind, ParamSpec};
    use serde_json::json;

    #[test]
    fn instance_json_is_pinned() {
        let at: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        let info = InstanceInfo {
            guid: Uuid::parse_str("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f").unwrap(),
            hostname: "web-1".into(),
            labels: BTreeMap::from([("role".into(), "web".into())]),
            channels: vec!["default".into()],
            slots: Slots { used: 1, total: 5 },
            channel_slots: BTreeMap::new(),
            jobs: vec![RunningJob {
                job_id: Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap(),
                command: "report".into(),
                pid: 42,
                rss_bytes: Some(4096),
                started_at: at,
            }],
            executor_rss_bytes: Some(8192),
            version: "0.1.0".into(),
            status: InstanceStatus::Serving,
            tree: crate::wire::TreeMode::Cgroup,
            catalog: vec![CommandInfo {
                name: "report".into(),
                description: "Daily report".into(),
                params: vec![ParamSpec {
                    name: "days".into(),
                    description: String::new(),
                    required: true,
                    default: None,
                    kind: ParamKind::Integer {
                        min: Some(1),
                        max: Some(30),
                    },
                }],
                channels: vec!["default".into()],
                timeout_secs: Some(60),
            }],
            started_at: at,
            heartbeat_at: at,
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(
            v,
            json!({
                "guid": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
                "hostname": "web-1",
                "labels": {"role": "web"},
                "channels": ["default"],
                "slots": {"used": 1, "total": 5},
                "jobs": [{
                    "job_id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d",
                    "command": "report",
                    "pid": 42,
                    "rss_bytes": 4096,
                    "started_at": "2026-01-02T03:04:05Z"
                }],
                "executor_rss_bytes": 8192,
                "version": "0.1.0",
                "status": "serving",
                "tree": "cgroup",
                "catalog": [{
                    "name": "report",
                    "description": "Daily report",
                    "params": [{"name": "days", "required": true, "type": "integer", "min": 1, "max": 30}],
                    "channels": ["default"],
                    "timeout_secs": 60
                }],
                "started_at": "2026-01-02T03:04:05Z",
                "heartbeat_at": "2026-01-02T03:04:05Z"
            })
        );
        assert_eq!(serde_json::from_value::<InstanceInfo>(v).unwrap(), info);
    }
}
