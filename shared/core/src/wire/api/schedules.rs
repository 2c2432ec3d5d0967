//! Schedules in the public API: the body of a create or a change, how a schedule looks with
//! its state and next fires, its fire history, and a timing's preview.

use crate::wire::schedule::{FireRecord, Misfire, Overlap, Schedule};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The body of `POST /api/v1/schedules` and of `PATCH /api/v1/schedules/{id}` (every field
/// optional in a change), and of `POST /api/v1/schedules/preview` (the timing fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_instances: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `cron` (with `cron`, `time_zone`), `once` (with `at`) or `interval` (with `every`,
    /// `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// A duration such as `90s` or `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire: Option<Misfire>,
    /// A duration up to `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
}

/// A create body, for messages that answer a bad one (each example reads as a
/// [`ScheduleInput`]).
pub const SCHEDULE_EXAMPLE: &str = r#"{"command": "hello", "kind": "cron", "cron": "0 0 * * * *"}"#;
/// A change body.
pub const CHANGE_EXAMPLE: &str = r#"{"enabled": false}"#;
/// A timing (the preview's body).
pub const TIMING_EXAMPLE: &str = r#"{"kind": "interval", "every": "15m"}"#;

/// Where a schedule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    /// It will fire (`next_fires` says when).
    Active,
    /// Enabled is false: no fires until resumed.
    Paused,
    /// Nothing is left to fire (a one-shot schedule that fired).
    Done,
}

/// A schedule as the API shows it: its fields, its state and its next fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleView {
    #[serde(flatten)]
    pub schedule: Schedule,
    pub state: ScheduleState,
    pub next_fires: Vec<DateTime<Utc>>,
}

/// `GET /api/v1/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleView>,
}

/// The query of `GET /api/v1/schedules/{id}/history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Fires at or after this instant (default: one day ago).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// At most this many (1 to 1000, default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `GET /api/v1/schedules/{id}/history`: fires oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FireHistory {
    pub fires: Vec<FireRecord>,
    /// Pass as `since` for the next page; null when this page holds the last fire.
    pub next_since: Option<DateTime<Utc>>,
}

/// `POST /api/v1/schedules/preview`: the next fires of a timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirePreview {
    pub next_fires: Vec<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::schedule::{FireState, ScheduleTarget, Timing};
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        "2026-01-02T03:04:05Z".parse().unwrap()
    }

    #[test]
    fn schedule_input_json_is_pinned() {
        let i = ScheduleInput {
            command: Some("hello".into()),
            kind: Some("interval".into()),
            every: Some("15m".into()),
            overlap: Some(Overlap::Queue),
            ..Default::default()
        };
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(
            v,
            json!({"command": "hello", "kind": "interval", "every": "15m", "overlap": "queue"})
        );
        assert_eq!(serde_json::from_value::<ScheduleInput>(v).unwrap(), i);
        assert!(serde_json::from_value::<ScheduleInput>(json!({"owner": "eve"})).is_err());
        for example in [SCHEDULE_EXAMPLE, CHANGE_EXAMPLE, TIMING_EXAMPLE] {
            serde_json::from_str::<ScheduleInput>(example).unwrap();
        }
    }

    #[test]
    fn schedule_view_json_is_pinned() {
        let view = ScheduleView {
            schedule: Schedule {
                id: Uuid::from_u128(1),
                name: String::new(),
                command: "hello".into(),
                params: BTreeMap::new(),
                target: ScheduleTarget::default(),
                timing: Timing::Once { at: at() },
                owner: "alice".into(),
                owner_roles: vec![],
                enabled: true,
                overlap: Overlap::Skip,
                misfire: Misfire::Skip,
                jitter: None,
                active_since: at(),
                job_id: None,
                created_at: at(),
                updated_at: at(),
            },
            state: ScheduleState::Active,
            next_fires: vec![at()],
        };
        let v = serde_json::to_value(&view).unwrap();
        assert_eq!(
            v,
            json!({"id": "00000000-0000-0000-0000-000000000001", "command": "hello",
                   "params": {}, "kind": "once", "at": "2026-01-02T03:04:05Z",
                   "owner": "alice", "owner_roles": [], "enabled": true, "overlap": "skip",
                   "misfire": "skip", "active_since": "2026-01-02T03:04:05Z",
                   "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:05Z",
                   "state": "active", "next_fires": ["2026-01-02T03:04:05Z"]})
        );
        assert_eq!(serde_json::from_value::<ScheduleView>(v).unwrap(), view);
        let list = ScheduleList {
            schedules: vec![view],
        };
        assert_eq!(
            serde_json::to_value(&list).unwrap()["schedules"][0]["state"],
            json!("active")
        );
    }

    #[test]
    fn history_and_preview_json_is_pinned() {
        let h = FireHistory {
            fires: vec![FireRecord {
                schedule_id: Uuid::from_u128(1),
                fire_at: at(),
                state: FireState::Skipped,
                by: "replica-1".into(),
                job_id: None,
                reason: Some("the previous job still runs".into()),
                updated_at: at(),
            }],
            next_since: None,
        };
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["next_since"], json!(null));
        assert_eq!(v["fires"][0]["state"], json!("skipped"));
        assert_eq!(serde_json::from_value::<FireHistory>(v).unwrap(), h);
        let p = FirePreview {
            next_fires: vec![at()],
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"next_fires": ["2026-01-02T03:04:05Z"]})
        );
        let q = HistoryQuery {
            since: Some(at()),
            limit: Some(10),
        };
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            json!({"since": "2026-01-02T03:04:05Z", "limit": 10})
        );
    }
}
