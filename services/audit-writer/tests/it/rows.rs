//! The writer's hand-bound INSERTs store exactly what the ORM stores: every kind of event,
//! out of order and in several batches, redelivered, from a forging instance, of a deleted
//! job, and output chunks, written by `apply::write`, give the same rows, value for value
//! and type for type, as the ORM inserting the rows `fold` computes from the accepted events.

use crate::helpers::*;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Statement};
use std::collections::BTreeMap;
use taskwire_audit_writer::batch::{Chunk, Item};
use taskwire_audit_writer::chain::AuditChain;
use taskwire_audit_writer::{apply, db, fold};
use taskwire_core::wire::{
    EventKind, JobDeleted, JobEvent, JobState, OutputStream, TreeMode, TreeReport,
};
use taskwire_migrations::entity::{deleted_jobs, executions, job_events, job_output};
use taskwire_testkit::PgDatabase;
use uuid::Uuid;

const OTHER_INSTANCE: Uuid = Uuid::from_u128(0x0bad);

fn item(e: &JobEvent) -> Item {
    Item::Event(e.clone(), serde_json::to_string(e).unwrap())
}

fn chunk(job: Uuid, instance: Uuid, seq: i64, data: &[u8]) -> Item {
    Item::Chunk(Chunk {
        job_id: job,
        instance,
        seq,
        stream: OutputStream::Stdout,
        encoding: Default::default(),
        data: data.to_vec(),
        at_us: 1_700_000_000_000_000 + seq,
    })
}

/// Events of three jobs (every kind), as the batches deliver them.
struct Case {
    batches: Vec<Vec<Item>>,
    /// The events the store keeps (first of each kind per job, not forged, not deleted), in
    /// the order they are first stored.
    kept: Vec<JobEvent>,
    chunks: Vec<job_output::Model>,
    deleted: Vec<deleted_jobs::Model>,
}

fn case() -> Case {
    let t0: DateTime<Utc> = "2026-03-04T05:06:07.123456Z".parse().unwrap();
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let on = |mut e: JobEvent| {
        e.instance = Some(TEST_INSTANCE);
        e
    };
    let queued = |job: Uuid, params: BTreeMap<String, serde_json::Value>| {
        ev(
            job,
            at(0),
            EventKind::Queued {
                spec: spec(job, "report", "alice", at(0), params),
            },
        )
    };
    let (done, killed, failed, gone) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let params = BTreeMap::from([
        ("days".to_string(), serde_json::json!(7)),
        (
            "zone".to_string(),
            serde_json::json!({"b": 1, "a": [true, null]}),
        ),
    ]);
    let done_q = queued(done, params);
    let done_s = on(ev(
        done,
        at(1),
        EventKind::Started {
            pid: 4242,
            argv: vec!["/bin/report".into(), "--days=7".into()],
            hostname: "web-1".into(),
            tree: TreeMode::Cgroup,
        },
    ));
    let mut done_x = on(ev(done, at(2), exited(JobState::Succeeded, Some(0), 2)));
    if let EventKind::Exited { result, .. } = &mut done_x.kind {
        *result = Some(serde_json::json!({"rows": 2, "ok": true}));
    }
    let killed_q = queued(killed, BTreeMap::new());
    let killed_x = on(ev(
        killed,
        at(3),
        EventKind::Exited {
            state: JobState::Killed,
            exit_code: None,
            signal: Some("SIGKILL".into()),
            duration_ms: 3000,
            peak_rss_bytes: None,
            output_bytes: 0,
            last_seq: 0,
            output_truncated: true,
            result: None,
            error: Some("killed".into()),
            ended_by: Some("bob".into()),
            tree: TreeReport {
                mode: TreeMode::ProcessGroup,
                leftover: 2,
                survivors: 1,
            },
        },
    ));
    let killed_c = ev(killed, at(2), EventKind::Cancelled { by: "bob".into() });
    // Started by another instance than the one that ran it: dropped.
    let mut forged = done_s.clone();
    forged.instance = Some(OTHER_INSTANCE);
    if let EventKind::Started { pid, .. } = &mut forged.kind {
        *pid = 1;
    }
    let failed_q = queued(failed, BTreeMap::new());
    let failed_f = on(ev(
        failed,
        at(1),
        EventKind::SpawnFailed {
            argv: vec!["/nope".into()],
            reason: "No such file".into(),
        },
    ));
    let failed_r = on(ev(
        failed,
        at(1),
        EventKind::Rejected {
            reason: "too late".into(),
        },
    ));
    let failed_l = ev(
        failed,
        at(9),
        EventKind::Lost {
            reason: "instance gone".into(),
        },
    );
    let gone_q = queued(gone, BTreeMap::new());
    let gone_d = JobDeleted {
        job_id: gone,
        by: "carol".into(),
        at: at(5),
    };
    let batches = vec![
        // Ends before starts, a job's events split across batches.
        vec![
            item(&done_x),
            item(&killed_x),
            item(&failed_l),
            item(&gone_q),
        ],
        vec![
            item(&done_s),
            item(&killed_c),
            item(&failed_f),
            chunk(done, TEST_INSTANCE, 2, b"world\n"),
            Item::Deleted(gone_d.clone()),
        ],
        vec![
            item(&forged),
            item(&done_q),
            item(&killed_q),
            item(&failed_r),
            item(&failed_q),
            // Redelivered, and late for a deleted job.
            item(&done_x),
            item(&gone_q),
            chunk(done, TEST_INSTANCE, 1, b"hello\n"),
            chunk(done, TEST_INSTANCE, 2, b"world\n"),
            chunk(done, OTHER_INSTANCE, 3, b"forged\n"),
            chunk(gone, TEST_INSTANCE, 1, b"late\n"),
        ],
    ];
    // In the order they were first stored: where two kinds set the same column (`error`,
    // `ended_by`), the first stored keeps it.
    let kept = vec![
        done_x, killed_x, failed_l, done_s, killed_c, failed_f, done_q, killed_q, failed_r,
        failed_q,
    ];
    let out = |seq: i64, data: &[u8]| job_output::Model {
        job_id: done,
        seq,
        stream: "stdout".into(),
        data: data.to_vec(),
        at_us: 1_700_000_000_000_000 + seq,
        encoding: None,
    };
    Case {
        batches,
        kept,
        chunks: vec![out(1, b"hello\n"), out(2, b"world\n")],
        deleted: vec![deleted_jobs::Model {
            job_id: gone,
            deleted_by: "carol".into(),
            at_us: fold::micros(gone_d.at),
        }],
    }
}

/// What the ORM stores for the case: the kept events, each job's row folded from them in
/// the order they were stored.
async fn reference(conn: &DatabaseConnection, c: &Case) {
    let mut rows: BTreeMap<Uuid, executions::Model> = BTreeMap::new();
    let mut events = Vec::new();
    for e in &c.kept {
        let row = fold::row_of(e);
        match rows.get_mut(&e.job_id) {
            Some(first) => fold::merge(first, row),
            None => {
                rows.insert(e.job_id, row);
            }
        }
        events.push(
            job_events::Model {
                job_id: e.job_id,
                event: taskwire_core::jobs::event_name(&e.kind).to_string(),
                at_us: fold::micros(e.at),
                instance: e.instance,
                body: serde_json::to_string(e).unwrap(),
            }
            .into_active_model(),
        );
    }
    job_events::Entity::insert_many(events)
        .exec_without_returning(conn)
        .await
        .unwrap();
    executions::Entity::insert_many(rows.into_values().map(|m| m.into_active_model()))
        .exec_without_returning(conn)
        .await
        .unwrap();
    job_output::Entity::insert_many(c.chunks.iter().map(|m| m.clone().into_active_model()))
        .exec_without_returning(conn)
        .await
        .unwrap();
    deleted_jobs::Entity::insert_many(c.deleted.iter().map(|m| m.clone().into_active_model()))
        .exec_without_returning(conn)
        .await
        .unwrap();
}

/// Every row of `table` as text that shows each value and its type, in key order.
async fn dump(conn: &DatabaseConnection, table: &str, columns: &[&str], key: &str) -> Vec<String> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            format!("SELECT row_to_json(t)::text AS r FROM {table} t ORDER BY {key}")
        }
        _ => {
            let quoted: Vec<String> = columns
                .iter()
                .map(|c| format!("quote(\"{c}\") || ':' || typeof(\"{c}\")"))
                .collect();
            format!(
                "SELECT {} AS r FROM {table} ORDER BY {key}",
                quoted.join(" || ' | ' || ")
            )
        }
    };
    conn.query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "r").unwrap())
        .collect()
}

async fn open(url: &str) -> DatabaseConnection {
    let conn = db::connect(url, 2).await.unwrap();
    db::migrate(&conn).await.unwrap();
    conn
}

async fn same_rows(a_url: &str, b_url: &str) {
    let (a, b) = (open(a_url).await, open(b_url).await);
    let c = case();
    let chain = AuditChain::new();
    for batch in &c.batches {
        apply::write(&a, &chain, batch).await.unwrap();
    }
    // Written twice (a redelivered batch) changes nothing.
    apply::write(&a, &chain, &c.batches[2]).await.unwrap();
    reference(&b, &c).await;
    use sea_orm::{IdenStatic, Iterable};
    fn names<C: Iterable + IdenStatic>() -> Vec<&'static str> {
        C::iter().map(|c| c.as_str()).collect()
    }
    for (table, columns, key) in [
        ("executions", names::<executions::Column>(), "job_id"),
        ("job_events", names::<job_events::Column>(), "job_id, event"),
        ("job_output", names::<job_output::Column>(), "job_id, seq"),
        ("deleted_jobs", names::<deleted_jobs::Column>(), "job_id"),
    ] {
        let (got, want) = (
            dump(&a, table, &columns, key).await,
            dump(&b, table, &columns, key).await,
        );
        assert!(!want.is_empty(), "{table}: the case stores rows");
        assert_eq!(got, want, "{table}");
    }
}

#[tokio::test]
async fn the_writers_inserts_store_what_the_orm_stores_on_sqlite() {
    taskwire_core::telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    same_rows(&url("writer.db"), &url("orm.db")).await;
}

#[tokio::test]
async fn the_writers_inserts_store_what_the_orm_stores_on_postgres() {
    taskwire_core::telemetry::init_for_tests();
    let (a, b) = (PgDatabase::create().await, PgDatabase::create().await);
    same_rows(&a.url(), &b.url()).await;
}
