//! One row per job: what was asked, where and how it ran, how it ended. Built up from the
//! job's events in any order: each event fills its own columns, and the state only moves
//! forward (queued, then running, then the first terminal state recorded).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "executions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: Uuid,
    pub command: Option<String>,
    pub params: Option<Json>,
    pub target: Option<Json>,
    pub channel: Option<String>,
    pub group_id: Option<Uuid>,
    pub retry_of: Option<Uuid>,
    pub attempt: Option<i32>,
    pub requested_by: Option<String>,
    pub via: Option<String>,
    pub queued_at_us: Option<i64>,
    pub instance: Option<Uuid>,
    pub hostname: Option<String>,
    pub argv: Option<Json>,
    pub pid: Option<i64>,
    pub tree_mode: Option<String>,
    pub started_at_us: Option<i64>,
    pub state: String,
    pub state_rank: i16,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub error: Option<String>,
    pub finished_at_us: Option<i64>,
    pub duration_ms: Option<i64>,
    pub ended_by: Option<String>,
    pub ended_at_us: Option<i64>,
    pub peak_rss_bytes: Option<i64>,
    pub output_bytes: Option<i64>,
    pub last_seq: Option<i64>,
    pub output_truncated: Option<bool>,
    pub result: Option<Json>,
    pub leftover: Option<i32>,
    pub survivors: Option<i32>,
    pub updated_at_us: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
