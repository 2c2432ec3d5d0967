//! Writes one batch in one transaction. Every insert is idempotent (primary keys, `ON
//! CONFLICT DO NOTHING`, the order-free executions upsert), so a batch that is written again
//! after a crash or a redelivery changes nothing: acknowledged after commit, the effect is
//! exactly once.

use crate::batch::{Chunk, Item};
use crate::fold;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, TransactionTrait,
};
use std::collections::{BTreeMap, HashSet};
use taskwire_migrations::entity::{audit_log, deleted_jobs, executions, job_events, job_output};
use uuid::Uuid;

/// Rows per multi-row INSERT (keeps every statement under SQLite's bound-parameter limit).
const ROWS_PER_INSERT: usize = 400;

/// Stores `items` in one transaction.
pub async fn write(db: &DatabaseConnection, items: &[Item]) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    write_in(&txn, items).await?;
    txn.commit().await
}

async fn write_in<C: ConnectionTrait>(db: &C, items: &[Item]) -> Result<(), DbErr> {
    let mut ids: HashSet<Uuid> = HashSet::new();
    for it in items {
        match it {
            Item::Event(e, _) => ids.insert(e.job_id),
            Item::Chunk(c) => ids.insert(c.job_id),
            Item::Deleted(d) => ids.insert(d.job_id),
            Item::Audit(_) | Item::Unreadable(_) => false,
        };
    }
    // Jobs already deleted: late events and output of theirs are not stored again.
    let mut dead: HashSet<Uuid> = HashSet::new();
    let id_list: Vec<Uuid> = ids.into_iter().collect();
    for part in id_list.chunks(ROWS_PER_INSERT) {
        let found = deleted_jobs::Entity::find()
            .filter(deleted_jobs::Column::JobId.is_in(part.iter().copied()))
            .all(db)
            .await?;
        dead.extend(found.into_iter().map(|t| t.job_id));
    }

    for it in items {
        if let Item::Deleted(d) = it {
            deleted_jobs::Entity::insert(
                deleted_jobs::Model {
                    job_id: d.job_id,
                    deleted_by: d.by.clone(),
                    at_us: fold::micros(d.at),
                }
                .into_active_model(),
            )
            .on_conflict_do_nothing()
            .exec_without_returning(db)
            .await?;
            job_output::Entity::delete_many()
                .filter(job_output::Column::JobId.eq(d.job_id))
                .exec(db)
                .await?;
            job_events::Entity::delete_many()
                .filter(job_events::Column::JobId.eq(d.job_id))
                .exec(db)
                .await?;
            executions::Entity::delete_many()
                .filter(executions::Column::JobId.eq(d.job_id))
                .exec(db)
                .await?;
            dead.insert(d.job_id);
        }
    }

    let mut rows: BTreeMap<Uuid, executions::Model> = BTreeMap::new();
    let mut events: BTreeMap<(Uuid, &'static str), job_events::ActiveModel> = BTreeMap::new();
    let mut chunks: BTreeMap<(Uuid, i64), &Chunk> = BTreeMap::new();
    let mut audits: BTreeMap<Uuid, audit_log::ActiveModel> = BTreeMap::new();
    for it in items {
        match it {
            Item::Event(e, raw) if !dead.contains(&e.job_id) => {
                let row = fold::row_of(e);
                match rows.get_mut(&e.job_id) {
                    Some(first) => fold::merge(first, row),
                    None => {
                        rows.insert(e.job_id, row);
                    }
                }
                let kind = taskwire_core::jobs::event_name(&e.kind);
                events.entry((e.job_id, kind)).or_insert_with(|| {
                    job_events::Model {
                        job_id: e.job_id,
                        event: kind.to_string(),
                        at_us: fold::micros(e.at),
                        instance: e.instance,
                        body: raw.clone(),
                    }
                    .into_active_model()
                });
            }
            Item::Chunk(c) if !dead.contains(&c.job_id) => {
                chunks.entry((c.job_id, c.seq)).or_insert(c);
            }
            Item::Audit(a) => {
                let via = serde_json::to_value(a.via)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                audits.entry(a.id).or_insert_with(|| {
                    audit_log::Model {
                        id: a.id,
                        at_us: fold::micros(a.at),
                        actor: a.actor.clone(),
                        action: a.action.clone(),
                        target: a.target.clone(),
                        allowed: a.allowed,
                        reason: a.reason.clone(),
                        source: a.source.clone(),
                        via,
                    }
                    .into_active_model()
                });
            }
            _ => {}
        }
    }

    let events: Vec<_> = events.into_values().collect();
    for part in events.chunks(ROWS_PER_INSERT) {
        job_events::Entity::insert_many(part.to_vec())
            .on_conflict_do_nothing()
            .exec_without_returning(db)
            .await?;
    }
    let rows: Vec<executions::ActiveModel> =
        rows.into_values().map(|m| m.into_active_model()).collect();
    let mut upsert = OnConflict::column(executions::Column::JobId);
    upsert.values(fold::upsert_exprs());
    for part in rows.chunks(ROWS_PER_INSERT / 2) {
        executions::Entity::insert_many(part.to_vec())
            .on_conflict(upsert.clone())
            .exec_without_returning(db)
            .await?;
    }
    let chunks: Vec<job_output::ActiveModel> = chunks
        .into_values()
        .map(|c| {
            job_output::Model {
                job_id: c.job_id,
                seq: c.seq,
                stream: c.stream.as_str().to_string(),
                data: c.data.clone(),
                at_us: c.at_us,
            }
            .into_active_model()
        })
        .collect();
    for part in chunks.chunks(ROWS_PER_INSERT) {
        job_output::Entity::insert_many(part.to_vec())
            .on_conflict_do_nothing()
            .exec_without_returning(db)
            .await?;
    }
    let audits: Vec<_> = audits.into_values().collect();
    for part in audits.chunks(ROWS_PER_INSERT) {
        audit_log::Entity::insert_many(part.to_vec())
            .on_conflict_do_nothing()
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}
