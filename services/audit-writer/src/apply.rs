//! Writes one batch in one transaction. Every insert is idempotent (primary keys, `ON
//! CONFLICT DO NOTHING`, the order-free executions upsert), so a batch that is written again
//! after a crash or a redelivery changes nothing: acknowledged after commit, the effect is
//! exactly once.
//!
//! Audit entries are linked into the writer's hash chain ([`crate::chain`]) in the order the
//! batch holds them, and only those not stored yet (by this writer or another): an entry is
//! in exactly one chain, and a chain has no gap.

use crate::batch::{Chunk, Item};
use crate::chain::{AuditChain, ChainWrite};
use crate::{fold, tables};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, TransactionTrait, TryInsertResult,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use taskwire_migrations::entity::{audit_log, deleted_jobs, executions, job_events, job_output};
use uuid::Uuid;

/// Rows per multi-row INSERT (keeps every statement under SQLite's bound-parameter limit).
const ROWS_PER_INSERT: usize = 400;

/// Attempts at a batch whose audit entries another writer stored meanwhile (each attempt
/// sees what the previous one lost to, so a second one succeeds unless a third writer races).
const CHAIN_ATTEMPTS: usize = 5;

/// Why one attempt at a batch did not commit.
enum Attempt {
    /// Another writer stored some of the batch's audit entries after this one looked: the
    /// chain would have a gap, so the transaction is rolled back and tried again.
    Raced,
    Db(DbErr),
}

impl From<DbErr> for Attempt {
    fn from(e: DbErr) -> Self {
        Attempt::Db(e)
    }
}

/// Stores `items` in one transaction, linking its audit entries into `chain`.
pub async fn write(
    db: &DatabaseConnection,
    chain: &AuditChain,
    items: &[Item],
) -> Result<(), DbErr> {
    // Held until the commit: this writer's batches extend its chain one at a time.
    let mut link = match items.iter().any(|i| matches!(i, Item::Audit(_))) {
        true => Some(chain.lock(db).await?),
        false => None,
    };
    for _ in 0..CHAIN_ATTEMPTS {
        let txn = db.begin().await?;
        match write_in(&txn, items, link.as_mut()).await {
            Ok(()) => {
                txn.commit().await?;
                if let Some(link) = link {
                    link.committed();
                }
                return Ok(());
            }
            Err(Attempt::Raced) => {
                txn.rollback().await?;
                if let Some(link) = link.as_mut() {
                    link.restart();
                }
            }
            Err(Attempt::Db(e)) => return Err(e),
        }
    }
    Err(DbErr::Custom(format!(
        "other writers kept storing this batch's audit entries first ({CHAIN_ATTEMPTS} attempts)"
    )))
}

async fn write_in<C: ConnectionTrait>(
    db: &C,
    items: &[Item],
    chain: Option<&mut ChainWrite<'_>>,
) -> Result<(), Attempt> {
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
    for row in tables::DELETED.run(db, &id_list).await? {
        dead.insert(row.try_get("", "job_id")?);
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

    // The instance the store records for each job: an event naming another instance (an
    // executor's key publishing about a job it does not run) is not taken.
    let event_jobs: Vec<Uuid> = items
        .iter()
        .filter_map(|it| match it {
            Item::Event(e, _) if e.instance.is_some() => Some(e.job_id),
            _ => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let runs_on = instances_of(db, &event_jobs).await?;
    let mut rows: BTreeMap<Uuid, executions::Model> = BTreeMap::new();
    let mut events: BTreeMap<(Uuid, &'static str), job_events::Model> = BTreeMap::new();
    let mut chunks: BTreeMap<(Uuid, i64), &Chunk> = BTreeMap::new();
    // In the batch's order: that is the order they are chained in.
    let mut audits: Vec<audit_log::Model> = Vec::new();
    let mut audit_ids: HashSet<Uuid> = HashSet::new();
    for it in items {
        match it {
            Item::Event(e, _) if matches!((runs_on.get(&e.job_id), e.instance), (Some(owner), Some(from)) if *owner != from) =>
            {
                tracing::warn!(job = %e.job_id, from = ?e.instance, "event from an instance that does not run the job: dropped");
            }
            Item::Event(e, raw) if !dead.contains(&e.job_id) => {
                let row = fold::row_of(e);
                match rows.get_mut(&e.job_id) {
                    Some(first) => fold::merge(first, row),
                    None => {
                        rows.insert(e.job_id, row);
                    }
                }
                let kind = taskwire_core::jobs::event_name(&e.kind);
                events
                    .entry((e.job_id, kind))
                    .or_insert_with(|| job_events::Model {
                        job_id: e.job_id,
                        event: kind.to_string(),
                        at_us: fold::micros(e.at),
                        instance: e.instance,
                        body: raw.clone(),
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
                if audit_ids.insert(a.id) {
                    audits.push(audit_log::Model {
                        id: a.id,
                        at_us: fold::micros(a.at),
                        actor: a.actor.clone(),
                        action: a.action.clone(),
                        target: a.target.clone(),
                        allowed: a.allowed,
                        reason: a.reason.clone(),
                        source: a.source.clone(),
                        via,
                        chain_id: None,
                        chain_seq: None,
                        prev_hash: None,
                        hash: None,
                    });
                }
            }
            _ => {}
        }
    }

    let mut values = Vec::with_capacity(events.len() * tables::JOB_EVENTS.width());
    for row in events.into_values() {
        tables::job_event(row, &mut values);
    }
    tables::JOB_EVENTS.run(db, values).await?;
    let mut values = Vec::with_capacity(rows.len() * tables::EXECUTIONS.width());
    for row in rows.into_values() {
        tables::execution(row, &mut values);
    }
    tables::EXECUTIONS.run(db, values).await?;
    // Output is taken only from the instance that runs the job (once the store knows it): an
    // instance's key may publish under its own GUID only, so a chunk of another instance's
    // job is a forgery and is dropped.
    let chunk_jobs: Vec<Uuid> = chunks
        .keys()
        .map(|(job, _)| *job)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let runs_on = instances_of(db, &chunk_jobs).await?;
    let mut values = Vec::with_capacity(chunks.len() * tables::JOB_OUTPUT.width());
    for c in chunks.into_values() {
        if let Some(owner) = runs_on.get(&c.job_id)
            && *owner != c.instance
        {
            tracing::warn!(job = %c.job_id, from = %c.instance, runs_on = %owner, "output chunk from an instance that does not run the job: dropped");
            continue;
        }
        tables::job_chunk(
            job_output::Model {
                job_id: c.job_id,
                seq: c.seq,
                stream: c.stream.as_str().to_string(),
                encoding: c.encoding.as_header().map(str::to_string),
                data: c.data.clone(),
                at_us: c.at_us,
            },
            &mut values,
        );
    }
    tables::JOB_OUTPUT.run(db, values).await?;
    if let Some(chain) = chain {
        store_audits(db, audits, chain).await?;
    } else if !audits.is_empty() {
        return Err(Attempt::Db(DbErr::Custom(
            "audit entries need the writer's chain".into(),
        )));
    }
    Ok(())
}

/// The instance the store records for each of `jobs` that has one.
async fn instances_of<C: ConnectionTrait>(
    db: &C,
    jobs: &[Uuid],
) -> Result<HashMap<Uuid, Uuid>, DbErr> {
    let mut out = HashMap::new();
    for row in tables::INSTANCES.run(db, jobs).await? {
        out.insert(row.try_get("", "job_id")?, row.try_get("", "instance")?);
    }
    Ok(out)
}

/// Links the entries not stored yet after the chain's head and inserts them.
async fn store_audits<C: ConnectionTrait>(
    db: &C,
    audits: Vec<audit_log::Model>,
    chain: &mut ChainWrite<'_>,
) -> Result<(), Attempt> {
    // A redelivered entry is already in some chain: linking it again would leave a gap where
    // its insert is skipped.
    let mut stored: HashSet<Uuid> = HashSet::new();
    let ids: Vec<Uuid> = audits.iter().map(|a| a.id).collect();
    for part in ids.chunks(ROWS_PER_INSERT) {
        let found = audit_log::Entity::find()
            .select_only()
            .column(audit_log::Column::Id)
            .filter(audit_log::Column::Id.is_in(part.iter().copied()))
            .into_tuple::<Uuid>()
            .all(db)
            .await?;
        stored.extend(found);
    }
    let id = chain.id();
    let rows: Vec<audit_log::ActiveModel> = audits
        .into_iter()
        .filter(|a| !stored.contains(&a.id))
        .map(|mut a| {
            chain.head.link(id, &mut a);
            a.into_active_model()
        })
        .collect();
    let mut inserted = 0u64;
    for part in rows.chunks(ROWS_PER_INSERT) {
        inserted += match audit_log::Entity::insert_many(part.to_vec())
            .on_conflict_do_nothing()
            .exec_without_returning(db)
            .await?
        {
            TryInsertResult::Inserted(n) => n,
            TryInsertResult::Conflicted | TryInsertResult::Empty => 0,
        };
    }
    if inserted != rows.len() as u64 {
        return Err(Attempt::Raced);
    }
    Ok(())
}
