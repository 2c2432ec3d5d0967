//! Audit writer benchmark: events/s stored for a burst of 100,000 lifecycle events, into
//! SQLite and into PostgreSQL, beside a plain multi-row INSERT of the same event rows into the
//! same table measured in the same run.
//!
//! Run: `cargo run --release -p taskwire-loadtests --bin audit-bench`
//! (BENCH_EVENTS=100000 to change the burst; BENCH_STORES=sqlite or postgres for one store;
//! BENCH_BATCH sets the writer's batch_max; TASKWIRE_TEST_POSTGRES names the PostgreSQL
//! admin URL, default postgres://postgres@127.0.0.1:5432/test).

use sea_orm::{
    ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Statement, TransactionTrait,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use taskwire_audit_writer::{AuditConfig, AuditWriter, AuditWriterOptions, db};
use taskwire_core::Namespace;
use taskwire_core::jobs::JobStore;
use taskwire_core::topology::{self, TopologyConfig};
use taskwire_core::wire::{
    EventKind, JobEvent, JobSpec, JobState, Target, TreeMode, TreeReport, Via,
};
use taskwire_loadtests::env_usize;
use taskwire_migrations::entity::job_events;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Three events per job: queued, started, exited.
fn events(n: usize) -> Vec<JobEvent> {
    let now = chrono::Utc::now();
    let mut out = Vec::with_capacity(n);
    let inst = Uuid::new_v4();
    while out.len() < n {
        let id = Uuid::now_v7();
        let spec = JobSpec::new(
            "report",
            Target::Channel("default".into()),
            "alice",
            Via::Http,
        )
        .with_id(id)
        .with_params(BTreeMap::from([("days".into(), serde_json::json!(7))]))
        .queued_at(now);
        let kinds = [
            EventKind::Queued { spec },
            EventKind::Started {
                pid: 4242,
                argv: vec!["/usr/bin/report".into(), "--days=7".into()],
                hostname: "web-1".into(),
                tree: TreeMode::Cgroup,
            },
            EventKind::Exited {
                state: JobState::Succeeded,
                exit_code: Some(0),
                signal: None,
                duration_ms: 12,
                peak_rss_bytes: Some(3 << 20),
                output_bytes: 120,
                last_seq: 2,
                output_truncated: false,
                result: None,
                error: None,
                ended_by: None,
                tree: TreeReport {
                    mode: TreeMode::Cgroup,
                    leftover: 0,
                    survivors: 0,
                },
            },
        ];
        for kind in kinds {
            if out.len() < n {
                // As published: the control plane queues (before any instance is chosen),
                // the executor reports the run.
                let instance = match kind {
                    EventKind::Queued { .. } => None,
                    _ => Some(inst),
                };
                out.push(JobEvent {
                    job_id: id,
                    at: now,
                    instance,
                    kind,
                });
            }
        }
    }
    out
}

async fn count(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM job_events",
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

/// The baseline: the same rows as plain multi-row INSERTs (400 rows per statement, 1,000 per
/// transaction), no conflict handling, no executions rows.
async fn plain_insert(url: &str, evs: &[JobEvent]) -> f64 {
    let conn = db::connect(url, 8).await.expect("connect");
    db::migrate(&conn).await.expect("migrate");
    let rows: Vec<job_events::ActiveModel> = evs
        .iter()
        .map(|e| {
            job_events::Model {
                job_id: e.job_id,
                event: taskwire_core::jobs::event_name(&e.kind).to_string(),
                at_us: e.at.timestamp_micros(),
                instance: e.instance,
                body: serde_json::to_string(e).expect("json"),
            }
            .into_active_model()
        })
        .collect();
    let t = Instant::now();
    for batch in rows.chunks(1000) {
        let txn = conn.begin().await.expect("begin");
        for part in batch.chunks(400) {
            job_events::Entity::insert_many(part.to_vec())
                .exec_without_returning(&txn)
                .await
                .expect("insert");
        }
        txn.commit().await.expect("commit");
    }
    let rate = evs.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(count(&conn).await as usize, evs.len());
    let _ = conn.close().await;
    rate
}

async fn writer_rate(url: &str, evs: &[JobEvent]) -> f64 {
    let nats = taskwire_testkit::NatsServer::start();
    let client = taskwire_core::nats::connect(&nats.url(), "bench")
        .await
        .expect("connect");
    let js = taskwire_core::nats::jetstream(client);
    let ns = Namespace::root();
    let topo = topology::ensure(&js, &ns, &TopologyConfig::default())
        .await
        .expect("topology");
    topology::ensure_consumers(&topo, &ns, &[])
        .await
        .expect("consumers");
    // Events as their publishers publish them: queued by the control plane, the rest by the
    // executor under its GUID (the writer drops an event from a publisher that may not send it).
    let inst = evs.iter().find_map(|e| e.instance).unwrap_or_default();
    let control = JobStore::new(js, topo.jobs.clone(), ns.clone());
    let executor = control.clone().as_instance(inst);
    // The burst is in the stream before the writer starts.
    let mut pending = futures::stream::FuturesUnordered::new();
    for e in evs {
        let store = match e.kind {
            EventKind::Queued { .. } => &control,
            _ => &executor,
        };
        pending.push(store.publish_event(e));
        if pending.len() >= 512 {
            use futures::StreamExt;
            pending.next().await.expect("one").expect("published");
        }
    }
    use futures::StreamExt;
    while let Some(r) = pending.next().await {
        r.expect("published");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = AuditWriterOptions {
        nats_url: nats.url(),
        nats_credentials: None,
        namespace: ns,
        topology: TopologyConfig::default(),
        state_dir: dir.path().to_path_buf(),
        config: AuditConfig {
            database_url: Some(url.to_string()),
            batch_max: env_usize("BENCH_BATCH", AuditConfig::default().batch_max),
            ..AuditConfig::default()
        },
    };
    let check = db::connect(url, 1).await.expect("connect");
    db::migrate(&check).await.expect("migrate");
    // A mark for profiling only the writer (`perf record -p` from here on).
    eprintln!(
        "audit-bench: the writer starts now (pid {})",
        std::process::id()
    );
    let t = Instant::now();
    let w = AuditWriter::start(opts, CancellationToken::new())
        .await
        .expect("writer")
        .expect("started");
    // Done when the durable consumer has nothing pending or unacknowledged: the writer
    // acknowledges only after commit. (Asking NATS keeps the polling off the database.)
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = loop {
        match topo
            .events_stream
            .get_consumer(&Namespace::root().consumer_audit_events())
            .await
        {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    loop {
        let info = consumer.info().await.expect("consumer info");
        if info.num_pending == 0
            && info.num_ack_pending == 0
            && info.delivered.stream_sequence >= evs.len() as u64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = evs.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(
        count(&check).await as usize,
        evs.len(),
        "every event stored"
    );
    w.stop().await;
    let _ = check.close().await;
    rate
}

#[tokio::main]
async fn main() {
    // TASKWIRE_LOG=taskwire_audit_writer=debug prints each batch's timings.
    taskwire_core::telemetry::init("warn");
    let n = env_usize("BENCH_EVENTS", 100_000);
    println!("audit benchmark: a burst of {n} lifecycle events (queued, started, exited per job)");
    let evs = events(n);
    let mut lines = Vec::new();
    let stores = std::env::var("BENCH_STORES").unwrap_or_else(|_| "sqlite,postgres".into());
    for backend in stores
        .split(',')
        .filter(|b| ["sqlite", "postgres"].contains(b))
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let (plain, writer) = if backend == "sqlite" {
            let a = format!("sqlite://{}", dir.path().join("plain.db").display());
            let b = format!("sqlite://{}", dir.path().join("audit.db").display());
            (plain_insert(&a, &evs).await, writer_rate(&b, &evs).await)
        } else {
            let a = taskwire_testkit::PgDatabase::create().await;
            let b = taskwire_testkit::PgDatabase::create().await;
            (
                plain_insert(&a.url(), &evs).await,
                writer_rate(&b.url(), &evs).await,
            )
        };
        lines.push(format!(
            "| {backend} | {plain:.0} | {writer:.0} | {:.0}% |",
            100.0 * writer / plain
        ));
    }
    println!(
        "| store | plain multi-row INSERT, rows/s | audit writer from JetStream, events/s | ratio |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for l in lines {
        println!("{l}");
    }
}
