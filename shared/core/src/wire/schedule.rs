//! Schedules (values of bucket `tw_schedules`, key `<schedule_id>`), their fires (bucket
//! `tw_schedule_fires`, key `f.<schedule_id>.<fire_ms>`), each schedule's progress (key
//! `c.<schedule_id>`), and the fire request a scheduler sends the gateway on `tw.sched.fire`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Timing {
    /// A cron expression with seconds, in a time zone (IANA name, default `UTC`).
    Cron {
        cron: String,
        #[serde(default = "utc")]
        time_zone: String,
    },
    /// Once, at an instant.
    Once { at: DateTime<Utc> },
    /// Every fixed interval from `start` (default: when the schedule became active).
    Interval {
        #[serde(with = "crate::units::duration_str")]
        every: Duration,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<DateTime<Utc>>,
    },
}

fn utc() -> String {
    "UTC".into()
}

/// What a fire does while the schedule's previous job still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Do not run; the fire is recorded as skipped (the default).
    #[default]
    Skip,
    /// Run anyway, beside the previous job.
    Allow,
    /// Wait until the previous job ends, then run (at most one fire waits; later ones are
    /// skipped while one waits).
    Queue,
}

/// What happens to fires that were due while no scheduler ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    /// Do not run them; one history entry says how many were missed (the default).
    #[default]
    Skip,
    /// Run once for all of them (the latest), record the rest as missed.
    RunOnce,
}

/// Where the jobs of a schedule run: the target fields of `POST /api/v1/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Uuid>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_instances: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A schedule: value of key `<id>` in bucket `tw_schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub target: ScheduleTarget,
    #[serde(flatten)]
    pub timing: Timing,
    /// The user who created it; every fire runs with this user's permissions, checked again.
    pub owner: String,
    /// The owner's roles when the schedule was made, used when the gateway's configuration
    /// does not list the owner (identity-provider users).
    #[serde(default)]
    pub owner_roles: Vec<String>,
    pub enabled: bool,
    #[serde(default)]
    pub overlap: Overlap,
    #[serde(default)]
    pub misfire: Misfire,
    /// Up to this much random delay per fire (spreads load).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::units::opt_duration_str"
    )]
    pub jitter: Option<Duration>,
    /// Fires before this instant are not due (set on create, resume and timing changes).
    pub active_since: DateTime<Utc>,
    /// Set for a delayed job (`POST /api/v1/jobs` with `not_before`): the id its job gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where one fire stands, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FireState {
    /// A scheduler claimed it and is submitting the job.
    Claimed,
    /// Waiting for the previous job to end (overlap `queue`).
    Waiting,
    /// The job was submitted (`job_id`).
    Submitted,
    /// The owner may no longer run the command (`reason`).
    Denied,
    /// Not run: the previous job still ran, the schedule was paused, ... (`reason`).
    Skipped,
    /// Due while no scheduler ran, not run by the misfire policy (`reason` says how many).
    Missed,
    /// The job could not be submitted (no instance, invalid parameters, ...; `reason`).
    Failed,
}

impl FireState {
    /// True once the fire will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, FireState::Claimed | FireState::Waiting)
    }
}

/// One fire: value of key `f.<schedule_id>.<fire_ms>` in bucket `tw_schedule_fires`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FireRecord {
    pub schedule_id: Uuid,
    /// The instant the schedule was due.
    pub fire_at: DateTime<Utc>,
    pub state: FireState,
    /// The scheduler replica that holds or held the claim.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A schedule's progress: value of key `c.<schedule_id>` in bucket `tw_schedule_fires`. A
/// replica takes fires by advancing `through` with compare-and-set, so each due fire is taken
/// by exactly one replica; fires taken but not finished stay in `inflight` until they are, so
/// another replica can finish them if the one that took them dies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleProgress {
    /// Every fire up to this instant has been taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<DateTime<Utc>>,
    /// Fires taken and not finished: fire time (ms since the epoch) -> when they were taken.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inflight: BTreeMap<i64, DateTime<Utc>>,
    /// The fire waiting for the previous job to end (overlap `queue`), in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<i64>,
    /// The job of the latest submitted fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<Uuid>,
    /// When this value was written. The bucket forgets a key `fires_max_age` after its last
    /// write, and a schedule without progress would take its past fires again, so schedulers
    /// write it anew well before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<DateTime<Utc>>,
}

/// A scheduler's request to run one fire (`tw.sched.fire`, request/reply, to the gateways).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FireRequest {
    pub schedule: Schedule,
    pub fire_at: DateTime<Utc>,
}

/// The gateway's answer to a [`FireRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FireReply {
    /// `submitted`, `denied` or `failed`.
    pub state: FireState,
    /// The job (the first one when the schedule fans out to several instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Key of a schedule's progress in bucket `tw_schedule_fires`.
pub fn progress_key(schedule: &Uuid) -> String {
    format!("c.{schedule}")
}

/// Key of one fire in bucket `tw_schedule_fires`.
pub fn fire_key(schedule: &Uuid, fire_at: DateTime<Utc>) -> String {
    format!("f.{schedule}.{}", fire_at.timestamp_millis())
}

/// Filter of every fire key of one schedule.
pub fn fire_filter(schedule: &Uuid) -> String {
    format!("f.{schedule}.*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schedule_json_is_pinned() {
        let at: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        let s = Schedule {
            id: Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap(),
            name: "nightly".into(),
            command: "report".into(),
            params: BTreeMap::from([("days".into(), json!(7))]),
            target: ScheduleTarget {
                channel: Some("default".into()),
                ..Default::default()
            },
            timing: Timing::Cron {
                cron: "0 30 2 * * *".into(),
                time_zone: "Europe/Berlin".into(),
            },
            owner: "alice".into(),
            owner_roles: vec!["ops".into()],
            enabled: true,
            overlap: Overlap::Queue,
            misfire: Misfire::RunOnce,
            jitter: Some(Duration::from_secs(5)),
            active_since: at,
            job_id: None,
            created_at: at,
            updated_at: at,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            json!({"id": "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d", "name": "nightly",
                   "command": "report", "params": {"days": 7}, "channel": "default",
                   "kind": "cron", "cron": "0 30 2 * * *", "time_zone": "Europe/Berlin",
                   "owner": "alice", "owner_roles": ["ops"], "enabled": true,
                   "overlap": "queue", "misfire": "run_once", "jitter": "5s",
                   "active_since": "2026-01-02T03:04:05Z",
                   "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:05Z"})
        );
        assert_eq!(serde_json::from_value::<Schedule>(v).unwrap(), s);
        let every: Timing =
            serde_json::from_value(json!({"kind": "interval", "every": "90s"})).unwrap();
        assert_eq!(
            every,
            Timing::Interval {
                every: Duration::from_secs(90),
                start: None
            }
        );
        assert_eq!(
            fire_key(&s.id, at),
            "f.0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d.1767323045000"
        );
    }
}
