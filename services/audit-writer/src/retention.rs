//! The log cleaner: deletes output, events, executions and audit entries older than their
//! configured ages (an unset or zero age keeps rows forever). Idempotent, so every writer
//! may run it.
//!
//! Audit entries of a hash chain ([`crate::chain`]) are deleted only from the chain's start:
//! an old entry that follows a newer one in its chain stays until that one is old too, so
//! retention never makes a gap. What it deleted of a chain is recorded in the same
//! transaction as a checkpoint (the seq and hash of the last deleted entry), which the
//! chain's oldest remaining entry must link to.

use crate::config::RetentionConfig;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use std::time::Duration;
use taskwire_migrations::entity::{
    audit_chain_checkpoints, audit_log, executions, job_events, job_output,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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
        let txn = db.begin().await?;
        p.audit = prune_audit(&txn, c, now.timestamp_micros()).await?;
        txn.commit().await?;
    }
    Ok(p)
}

/// Deletes audit entries older than `cutoff`: every such entry stored before chaining, and
/// of each chain the longest run from its start that is all older, with its checkpoint.
async fn prune_audit<C: ConnectionTrait>(db: &C, cutoff: i64, now_us: i64) -> Result<u64, DbErr> {
    use audit_log::Column as A;
    let mut deleted = audit_log::Entity::delete_many()
        .filter(A::ChainId.is_null())
        .filter(A::AtUs.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected;
    let chains: Vec<Uuid> = audit_log::Entity::find()
        .select_only()
        .column(A::ChainId)
        .distinct()
        .filter(A::ChainId.is_not_null())
        .filter(A::AtUs.lt(cutoff))
        .into_tuple::<Uuid>()
        .all(db)
        .await?;
    for chain in chains {
        // The chain's first entry that is not old: everything before it goes.
        let keep_from: Option<i64> = audit_log::Entity::find()
            .select_only()
            .column_as(A::ChainSeq.min(), "seq")
            .filter(A::ChainId.eq(chain))
            .filter(A::AtUs.gte(cutoff))
            .into_tuple::<Option<i64>>()
            .one(db)
            .await?
            .flatten();
        let mut last = audit_log::Entity::find()
            .filter(A::ChainId.eq(chain))
            .order_by_desc(A::ChainSeq)
            .limit(1);
        if let Some(k) = keep_from {
            last = last.filter(A::ChainSeq.lt(k));
        }
        let Some(last) = last.one(db).await? else {
            continue;
        };
        let (Some(seq), Some(hash)) = (last.chain_seq, last.hash) else {
            // A chain entry without its chain columns is broken: leave it for verify to name.
            continue;
        };
        deleted += audit_log::Entity::delete_many()
            .filter(A::ChainId.eq(chain))
            .filter(A::ChainSeq.lte(seq))
            .exec(db)
            .await?
            .rows_affected;
        // Moves forward only: a pass that read an older state does not move it back.
        let mut upsert = OnConflict::column(audit_chain_checkpoints::Column::ChainId);
        upsert
            .update_columns([
                audit_chain_checkpoints::Column::Seq,
                audit_chain_checkpoints::Column::Hash,
                audit_chain_checkpoints::Column::AtUs,
            ])
            .action_and_where(
                Expr::col((
                    audit_chain_checkpoints::Entity,
                    audit_chain_checkpoints::Column::Seq,
                ))
                .lt(seq),
            );
        audit_chain_checkpoints::Entity::insert(
            audit_chain_checkpoints::Model {
                chain_id: chain,
                seq,
                hash,
                at_us: now_us,
            }
            .into_active_model(),
        )
        .on_conflict(upsert)
        .exec_without_returning(db)
        .await?;
    }
    Ok(deleted)
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
