//! The log cleaner: deletes output, events, executions and audit entries older than their
//! configured ages (an unset or zero age keeps rows forever). Idempotent, so every writer
//! may run it.

use crate::config::RetentionConfig;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use std::time::Duration;
use taskwire_migrations::entity::{audit_log, executions, job_events, job_output};
use tokio_util::sync::CancellationToken;

/// Rows removed by one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub output: u64,
    pub events: u64,
    pub executions: u64,
    pub audit: u64,
}

fn cutoff(now: DateTime<Utc>, age: Option<Duration>) -> Option<i64> {
    let age = age.filter(|a| !a.is_zero())?;
    let age = chrono::Duration::from_std(age).ok()?;
    Some((now - age).timestamp_micros())
}

/// One pass, as of `now`.
pub async fn prune(
    db: &DatabaseConnection,
    cfg: &RetentionConfig,
    now: DateTime<Utc>,
) -> Result<Pruned, DbErr> {
    let mut p = Pruned::default();
    if let Some(c) = cutoff(now, cfg.output_max_age) {
        p.output = job_output::Entity::delete_many()
            .filter(job_output::Column::AtUs.lt(c))
            .exec(db)
            .await?
            .rows_affected;
    }
    if let Some(c) = cutoff(now, cfg.events_max_age) {
        p.events = job_events::Entity::delete_many()
            .filter(job_events::Column::AtUs.lt(c))
            .exec(db)
            .await?
            .rows_affected;
    }
    if let Some(c) = cutoff(now, cfg.executions_max_age) {
        // Only ended jobs: a long-running job's row stays however old it is.
        p.executions = executions::Entity::delete_many()
            .filter(executions::Column::QueuedAtUs.lt(c))
            .filter(executions::Column::StateRank.eq(2))
            .exec(db)
            .await?
            .rows_affected;
    }
    if let Some(c) = cutoff(now, cfg.audit_max_age) {
        p.audit = audit_log::Entity::delete_many()
            .filter(audit_log::Column::AtUs.lt(c))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(p)
}

/// Prunes every `cfg.interval` until `stop`.
pub async fn run(db: DatabaseConnection, cfg: RetentionConfig, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = stop.cancelled() => return,
        }
        match prune(&db, &cfg, Utc::now()).await {
            Ok(p) if p != Pruned::default() => tracing::info!(?p, "retention pruned old rows"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "retention pass failed; trying again next interval")
            }
        }
    }
}
