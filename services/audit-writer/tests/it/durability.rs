//! Rows are delayed, never lost or doubled: a writer killed again and again mid-stream, a
//! PostgreSQL outage, two writers at once.

use crate::helpers::*;
use std::time::Duration;
use taskwire_testkit::TcpProxy;

const CATALOG: &str = r#"
[commands.two]
shell = true
script = 'echo "job $1 out"; echo "job $1 err" >&2'
args = ["{n}"]
[[commands.two.params]]
name = "n"
type = "integer"
min = 0
max = 100000
"#;

/// Whether every event and chunk of `jobs` jobs has arrived: rows land in batches that may
/// commit out of order (parallel transactions, retries after an outage), so the exited events
/// alone do not say the queued ones are in.
async fn complete(db: &sea_orm::DatabaseConnection, jobs: i64) -> bool {
    count(db, "job_events", "event = 'queued'").await == jobs
        && count(db, "job_events", "event = 'exited'").await == jobs
        && count(db, "job_output", "").await == sum_last_seq(db).await
}

/// Every job has exactly one executions row in a final state and exactly its chunks
/// 1..=last_seq.
async fn assert_complete(db: &sea_orm::DatabaseConnection, jobs: i64) {
    assert_eq!(count(db, "executions", "").await, jobs);
    let succeeded = count(db, "executions", "state = 'succeeded'").await;
    if succeeded != jobs {
        // say which states the others were left in, for whoever chases this
        let mut others = Vec::new();
        for st in [
            "queued",
            "running",
            "failed",
            "timed_out",
            "stopped",
            "killed",
            "lost",
            "cancelled",
        ] {
            let n = count(db, "executions", &format!("state = '{st}'")).await;
            if n > 0 {
                others.push(format!("{st}: {n}"));
            }
        }
        eprintln!("executions not succeeded: {}", others.join(", "));
    }
    assert_eq!(succeeded, jobs);
    assert_eq!(count(db, "job_events", "event = 'queued'").await, jobs);
    assert_eq!(count(db, "job_events", "event = 'exited'").await, jobs);
    let want = sum_last_seq(db).await;
    let have = count(db, "job_output", "").await;
    let inside = scalar(
        db,
        "SELECT COUNT(*) AS n FROM job_output o JOIN executions e ON e.job_id = o.job_id \
         WHERE o.seq >= 1 AND o.seq <= e.last_seq",
    )
    .await;
    assert!(want >= 2 * jobs, "each job wrote two chunks at least");
    assert_eq!(have, want, "no chunk missing");
    assert_eq!(inside, want, "every chunk belongs to its job's range");
}

async fn run_jobs(s: &Stack, from: u32, n: u32) {
    for i in from..from + n {
        s.enqueue("two", serde_json::json!({"n": i})).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_again_and_again_during_2000_jobs_loses_and_doubles_nothing() {
    let s = Stack::new(Backend::Sqlite).await;
    let mut exec = s.start_executor(CATALOG).await;
    let db = s.db().await;
    let submitting = run_jobs(&s, 0, 2000);
    let killing = async {
        let mut kills = 0;
        for round in 0..8u64 {
            let mut child = s.writer_process();
            // Let it get some way into a batch, then kill it without warning.
            tokio::time::sleep(Duration::from_millis(250 + 90 * round)).await;
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
        }
        kills
    };
    let (_, kills) = tokio::join!(submitting, killing);
    assert_eq!(kills, 8);
    let mut last = s.writer_process();
    eventually(
        "all 2000 jobs stored",
        Duration::from_secs(180),
        async || complete(&db, 2000).await,
    )
    .await;
    assert_complete(&db, 2000).await;
    last.kill().unwrap();
    last.wait().unwrap();
    exec.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_delays_rows_and_loses_none() {
    let s = Stack::new(Backend::Postgres).await;
    let pg_addr: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = TcpProxy::start(pg_addr).await;
    let url = s.pg.as_ref().unwrap().url_via(proxy.addr());
    let w = s.writer_at(&url).await;
    let mut exec = s.start_executor(CATALOG).await;
    let db = s.db().await;
    run_jobs(&s, 0, 100).await;
    eventually("first jobs stored", Duration::from_secs(60), async || {
        count(&db, "job_events", "event = 'exited'").await == 100
    })
    .await;

    proxy.cut();
    run_jobs(&s, 100, 200).await;
    // The jobs run and finish while the database is away; nothing of them is stored yet.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&db, "job_events", "event = 'exited'").await, 100);
    proxy.restore();

    eventually("rows caught up", Duration::from_secs(120), async || {
        complete(&db, 300).await
    })
    .await;
    assert_complete(&db, 300).await;
    exec.drain().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_at_once_store_every_row_once() {
    let s = Stack::new(Backend::Postgres).await;
    let (a, b) = tokio::join!(s.writer(), s.writer());
    let mut exec = s.start_executor(CATALOG).await;
    let db = s.db().await;
    run_jobs(&s, 0, 500).await;
    eventually("all stored", Duration::from_secs(120), async || {
        complete(&db, 500).await
    })
    .await;
    assert_complete(&db, 500).await;
    exec.drain().await;
    a.stop().await;
    b.stop().await;
}
