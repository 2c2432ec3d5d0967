//! The audit store takes a job's output and events only from the instance that runs it: an
//! instance's key publishes under its own GUID only, so output or an end of another
//! instance's job is a forgery and is not stored.

use crate::helpers::*;
use chrono::Utc;
use std::collections::BTreeMap;
use std::time::Duration;
use taskwire_core::wire::{EventKind, JobState, OutputStream, TreeMode};
use uuid::Uuid;

async fn forged_output_of_another_instance(backend: Backend) {
    let s = Stack::new(backend).await;
    let _w = s.writer().await;
    let db = s.db().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let job = Uuid::now_v7();
    let now = Utc::now();
    s.event(&ev(
        job,
        now,
        EventKind::Queued {
            spec: spec(job, "report", "alice", now, BTreeMap::new()),
        },
    ))
    .await;
    let mut started = ev(
        job,
        now,
        EventKind::Started {
            pid: 42,
            argv: vec!["/bin/report".into()],
            hostname: "a".into(),
            tree: TreeMode::Cgroup,
        },
    );
    started.instance = Some(a);
    s.event(&started).await;
    // The store knows the job runs on A (its events and its row go in one transaction).
    eventually(
        "the job's events stored",
        Duration::from_secs(20),
        async || count(&db, "job_events", "").await == 2,
    )
    .await;
    s.chunk_from(b, job, 1, OutputStream::Stdout, b"forged\n")
        .await;
    s.chunk_from(a, job, 2, OutputStream::Stdout, b"real\n")
        .await;
    s.chunk_from(a, job, 3, OutputStream::Stdout, b"real\n")
        .await;
    eventually("A's chunks stored", Duration::from_secs(20), async || {
        count(&db, "job_output", "seq >= 2").await == 2
    })
    .await;
    assert_eq!(count(&db, "job_output", "seq = 1").await, 0);

    // B's key publishes, under its own GUID, that A's job ended: not taken. A's end is.
    let mut forged_end = ev(job, Utc::now(), exited(JobState::Failed, Some(99), 3));
    forged_end.instance = Some(b);
    s.event(&forged_end).await;
    let mut end = ev(job, Utc::now(), exited(JobState::Succeeded, Some(0), 3));
    end.instance = Some(a);
    s.event(&end).await;
    eventually(
        "the job's end stored",
        Duration::from_secs(20),
        async || count(&db, "job_events", "").await == 3,
    )
    .await;
    assert_eq!(count(&db, "executions", "exit_code = 0").await, 1);
    assert_eq!(count(&db, "executions", "exit_code = 99").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_of_another_instance_is_not_stored_on_sqlite() {
    forged_output_of_another_instance(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_of_another_instance_is_not_stored_on_postgres() {
    forged_output_of_another_instance(Backend::Postgres).await;
}
