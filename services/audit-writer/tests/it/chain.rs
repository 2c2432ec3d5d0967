//! The audit log is tamper-evident: every entry a writer stores is hash-chained to its
//! previous one, and `verify` names exactly the entry where an edit, a deletion or a rewrite
//! breaks the chain; retention and writer restarts never look like tampering.

use crate::helpers::*;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder};
use std::time::Duration;
use taskwire_audit_writer::RetentionConfig;
use taskwire_audit_writer::chain::{self, GENESIS, Problem, Verification};
use taskwire_audit_writer::retention::prune;
use taskwire_core::wire::audit::KIND_DECISION;
use taskwire_core::wire::{AuditEvent, Via};
use taskwire_migrations::entity::{audit_chain_checkpoints, audit_log};
use uuid::Uuid;

fn decision(n: usize, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        at,
        actor: Some(format!("user{n}")),
        action: "jobs.submit".into(),
        target: Some("report".into()),
        allowed: n.is_multiple_of(2),
        reason: format!("rule {n}"),
        source: "127.0.0.1:4000".into(),
        via: Via::Http,
    }
}

/// Publishes `a` as a gateway does and waits until the store holds `total` entries, so that
/// entries are chained in the order a test publishes them.
async fn store_one(s: &Stack, db: &DatabaseConnection, a: &AuditEvent, total: i64) {
    s.publish_audit(KIND_DECISION, a).await;
    eventually("the entry stored", Duration::from_secs(20), async || {
        count(db, "audit_log", "").await == total
    })
    .await;
}

/// The chained entries, in chain order.
async fn entries(db: &DatabaseConnection) -> Vec<audit_log::Model> {
    audit_log::Entity::find()
        .order_by_asc(audit_log::Column::ChainId)
        .order_by_asc(audit_log::Column::ChainSeq)
        .all(db)
        .await
        .unwrap()
}

async fn verify(db: &DatabaseConnection) -> Verification {
    chain::verify(db).await.unwrap()
}

async fn sql(db: &DatabaseConnection, statement: &str) {
    db.execute_unprepared(statement).await.unwrap();
}

async fn edit_delete_rewrite(backend: Backend) {
    let s = Stack::new(backend).await;
    let w = s.writer().await;
    let db = s.db().await;
    let published: Vec<AuditEvent> = (1..=6).map(|n| decision(n, Utc::now())).collect();
    for (i, a) in published.iter().enumerate() {
        store_one(&s, &db, a, i as i64 + 1).await;
    }

    let report = verify(&db).await;
    assert_eq!(
        report,
        Verification {
            chains: 1,
            rows_checked: 6,
            legacy_rows: 0,
            broken: None
        }
    );
    let rows = entries(&db).await;
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        published.iter().map(|a| a.id).collect::<Vec<_>>(),
        "chained in the order stored"
    );
    assert_eq!(
        rows.iter().map(|r| r.chain_seq).collect::<Vec<_>>(),
        (1..=6).map(Some).collect::<Vec<_>>()
    );
    assert_eq!(rows[0].prev_hash.as_deref(), Some(GENESIS));
    for pair in rows.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }

    // Someone changes why entry 3 was decided: verify names exactly that entry.
    sql(
        &db,
        "UPDATE audit_log SET reason = 'allowed by admin' WHERE chain_seq = 3",
    )
    .await;
    let broken = verify(&db).await.broken.expect("an edited entry is found");
    assert_eq!((broken.row_id, broken.seq), (rows[2].id, Some(3)));
    assert!(
        matches!(broken.problem, Problem::HashMismatch { ref stored, .. } if Some(stored) == rows[2].hash.as_ref()),
        "{broken:?}"
    );
    assert!(broken.to_string().contains("edited"), "{broken}");
    sql(
        &db,
        "UPDATE audit_log SET reason = 'rule 3' WHERE chain_seq = 3",
    )
    .await;
    assert!(
        verify(&db).await.intact(),
        "restored, the entry verifies again"
    );

    // Rewritten by someone who knows the hash (the actor changed, the hash recomputed): the
    // next entry no longer links to it.
    let mut forged = rows[2].clone();
    forged.actor = Some("admin".into());
    let forged_hash = chain::entry_hash(&forged).unwrap();
    sql(
        &db,
        &format!(
            "UPDATE audit_log SET actor = 'admin', hash = '{forged_hash}' WHERE chain_seq = 3"
        ),
    )
    .await;
    let broken = verify(&db)
        .await
        .broken
        .expect("a rewritten entry is found");
    assert_eq!((broken.row_id, broken.seq), (rows[3].id, Some(4)));
    assert_eq!(
        broken.problem,
        Problem::PrevHashMismatch {
            expected: forged_hash,
            found: rows[2].hash.clone().unwrap(),
        }
    );
    sql(
        &db,
        &format!(
            "UPDATE audit_log SET actor = 'user3', hash = '{}' WHERE chain_seq = 3",
            rows[2].hash.as_deref().unwrap()
        ),
    )
    .await;
    assert!(verify(&db).await.intact());

    // Entry 5 deleted: the gap is named at the entry after it.
    sql(&db, "DELETE FROM audit_log WHERE chain_seq = 5").await;
    let report = verify(&db).await;
    let broken = report.broken.expect("a deleted entry is found");
    assert_eq!((broken.row_id, broken.seq), (rows[5].id, Some(6)));
    assert_eq!(
        broken.problem,
        Problem::SeqGap {
            expected: 5,
            found: 6
        }
    );
    assert_eq!(report.rows_checked, 4, "stops at the first broken link");
    assert!(
        broken.to_string().contains("entry 5 is missing"),
        "{broken}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_an_edited_a_rewritten_and_a_deleted_entry_on_sqlite() {
    edit_delete_rewrite(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_an_edited_a_rewritten_and_a_deleted_entry_on_postgres() {
    edit_delete_rewrite(Backend::Postgres).await;
}

async fn restart_and_legacy(backend: Backend) {
    let s = Stack::new(backend).await;
    let db = s.db().await;
    // An entry from before chaining: NULL chain columns.
    let legacy = decision(0, Utc::now());
    audit_log::Entity::insert(audit_log::ActiveModel::from(audit_log::Model {
        id: legacy.id,
        at_us: legacy.at.timestamp_micros(),
        actor: legacy.actor.clone(),
        action: legacy.action.clone(),
        target: legacy.target.clone(),
        allowed: legacy.allowed,
        reason: legacy.reason.clone(),
        source: legacy.source.clone(),
        via: "http".into(),
        chain_id: None,
        chain_seq: None,
        prev_hash: None,
        hash: None,
    }))
    .exec_without_returning(&db)
    .await
    .unwrap();

    let first = s.writer().await;
    for n in 1..=2 {
        store_one(&s, &db, &decision(n, Utc::now()), 1 + n as i64).await;
    }
    first.stop().await;
    let second = s.writer().await;
    for n in 3..=5 {
        store_one(&s, &db, &decision(n, Utc::now()), 1 + n as i64).await;
    }

    let report = verify(&db).await;
    assert_eq!(
        report,
        Verification {
            chains: 2,
            rows_checked: 5,
            legacy_rows: 1,
            broken: None
        }
    );
    let rows = entries(&db).await;
    let chained: Vec<_> = rows.iter().filter(|r| r.chain_id.is_some()).collect();
    let starts: Vec<_> = chained.iter().filter(|r| r.chain_seq == Some(1)).collect();
    assert_eq!(starts.len(), 2, "each writer start has its own chain");
    assert!(
        starts
            .iter()
            .all(|r| r.prev_hash.as_deref() == Some(GENESIS))
    );
    assert_ne!(starts[0].chain_id, starts[1].chain_id);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_writer_starts_a_new_chain_and_legacy_entries_are_counted_on_sqlite() {
    restart_and_legacy(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_writer_starts_a_new_chain_and_legacy_entries_are_counted_on_postgres() {
    restart_and_legacy(Backend::Postgres).await;
}

async fn retention_cut(backend: Backend) {
    let s = Stack::new(backend).await;
    let w = s.writer().await;
    let db = s.db().await;
    let now = Utc::now();
    let old = now - chrono::Duration::days(40);
    // Two old entries, a new one, then an old one after it (a gateway with a slow clock).
    let ages = [old, old, now, old, now];
    for (i, at) in ages.iter().enumerate() {
        store_one(&s, &db, &decision(i + 1, *at), i as i64 + 1).await;
    }
    let rows = entries(&db).await;
    let cfg = RetentionConfig {
        audit_max_age: Some(Duration::from_secs(30 * 86400)),
        ..RetentionConfig::default()
    };
    let pruned = prune(w.database(), &cfg, now).await.unwrap();
    assert_eq!(
        pruned.audit, 2,
        "only the chain's start is cut: the old entry after a new one stays"
    );
    assert_eq!(count(&db, "audit_log", "").await, 3);
    let checkpoint = audit_chain_checkpoints::Entity::find()
        .all(&db)
        .await
        .unwrap();
    assert_eq!(checkpoint.len(), 1);
    assert_eq!(
        (
            checkpoint[0].chain_id,
            checkpoint[0].seq,
            &checkpoint[0].hash
        ),
        (rows[1].chain_id.unwrap(), 2, rows[1].hash.as_ref().unwrap())
    );
    assert_eq!(
        verify(&db).await,
        Verification {
            chains: 1,
            rows_checked: 3,
            legacy_rows: 0,
            broken: None
        },
        "a chain cut by retention verifies"
    );
    // The writer goes on after the cut.
    store_one(&s, &db, &decision(6, Utc::now()), 4).await;
    assert!(verify(&db).await.intact());

    // Deleting the oldest remaining entry is not retention: named as a gap.
    sql(&db, "DELETE FROM audit_log WHERE chain_seq = 3").await;
    let broken = verify(&db)
        .await
        .broken
        .expect("a deleted first entry is found");
    assert_eq!((broken.row_id, broken.seq), (rows[3].id, Some(4)));
    assert_eq!(
        broken.problem,
        Problem::SeqGap {
            expected: 3,
            found: 4
        }
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_cuts_chains_only_from_their_start_and_they_still_verify_on_sqlite() {
    retention_cut(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_cuts_chains_only_from_their_start_and_they_still_verify_on_postgres() {
    retention_cut(Backend::Postgres).await;
}

async fn two_writers(backend: Backend) {
    let s = Stack::new(backend).await;
    let a = s.writer().await;
    let b = s.writer().await;
    let db = s.db().await;
    const N: usize = 60;
    for n in 0..N {
        s.publish_audit(KIND_DECISION, &decision(n, Utc::now()))
            .await;
    }
    eventually("every entry stored", Duration::from_secs(30), async || {
        count(&db, "audit_log", "").await == N as i64
    })
    .await;
    let report = verify(&db).await;
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.rows_checked, N as u64);
    assert!((1..=2).contains(&report.chains), "{report:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_at_once_each_keep_an_unbroken_chain_on_sqlite() {
    two_writers(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_at_once_each_keep_an_unbroken_chain_on_postgres() {
    two_writers(Backend::Postgres).await;
}
