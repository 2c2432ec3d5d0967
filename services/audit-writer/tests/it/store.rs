//! Every kind of event lands in its table, on SQLite and on PostgreSQL, whatever the order
//! the events arrive in; deleted jobs stay deleted.

use crate::helpers::*;
use chrono::Utc;
use std::collections::BTreeMap;
use std::time::Duration;
use taskwire_core::wire::audit::{KIND_DECISION, KIND_JOB_DELETED, KIND_MALFORMED};
use taskwire_core::wire::history::{STORE_JOBS_GET, STORE_JOBS_OUTPUT};
use taskwire_core::wire::{
    AuditEvent, EventKind, JobDeleted, JobState, OutputPage, OutputStream, StoreErrorCode,
    StoreReply, StoredJob, TreeMode, TreeReport, Via,
};
use uuid::Uuid;

async fn every_kind(backend: Backend) {
    let s = Stack::new(backend).await;
    let w = s.writer().await;
    let db = s.db().await;
    let t0 = Utc::now() - chrono::Duration::seconds(30);
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    let inst = Uuid::new_v4();
    let queued = |id: Uuid, cmd: &str| {
        ev(
            id,
            at(0),
            EventKind::Queued {
                spec: spec(id, cmd, "alice", at(0), BTreeMap::new()),
            },
        )
    };

    // A job killed by bob, its events published out of order.
    let killed = Uuid::now_v7();
    let mut exit = ev(
        killed,
        at(3),
        EventKind::Exited {
            state: JobState::Killed,
            exit_code: None,
            signal: Some("SIGTERM".into()),
            duration_ms: 2000,
            peak_rss_bytes: Some(3 << 20),
            output_bytes: 9,
            last_seq: 3,
            output_truncated: false,
            result: Some(serde_json::json!({"rows": 2})),
            error: None,
            ended_by: Some("bob".into()),
            tree: TreeReport {
                mode: TreeMode::Cgroup,
                leftover: 1,
                survivors: 0,
            },
        },
    );
    exit.instance = Some(inst);
    s.event(&exit).await;
    let mut started = ev(
        killed,
        at(1),
        EventKind::Started {
            pid: 4242,
            argv: vec!["/bin/report".into(), "--days=7".into()],
            hostname: "web-1".into(),
            tree: TreeMode::Cgroup,
        },
    );
    started.instance = Some(inst);
    s.event(&started).await;
    s.event(&queued(killed, "report")).await;
    s.chunk(killed, 2, OutputStream::Stderr, b"err\xff\n").await;
    s.chunk(killed, 1, OutputStream::Stdout, b"out\n").await;
    s.chunk(killed, 3, OutputStream::System, b"KILLED\n").await;
    // A compressed chunk is stored compressed and read back as written; one whose block is
    // corrupt keeps its place as a line that says so.
    let log: Vec<u8> = (0..4000)
        .flat_map(|i| format!("line {i}: all is well\n").into_bytes())
        .take(taskwire_core::wire::output::MAX_CHUNK)
        .collect();
    let (enc, packed) = taskwire_core::wire::output::encode_chunk(&log.clone().into());
    assert!(enc.as_header() == Some("lz4") && packed.len() < log.len() / 4);
    s.chunk_encoded(
        inst,
        killed,
        4,
        OutputStream::Stdout,
        enc.as_header(),
        &packed,
    )
    .await;
    s.chunk_encoded(
        inst,
        killed,
        5,
        OutputStream::Stdout,
        Some("lz4"),
        b"\x10\0\0\0\xff",
    )
    .await;

    // One job for each other ending.
    let spawn_failed = Uuid::now_v7();
    s.event(&queued(spawn_failed, "nope")).await;
    s.event(&ev(
        spawn_failed,
        at(1),
        EventKind::SpawnFailed {
            argv: vec!["/nope".into()],
            reason: "No such file or directory (os error 2)".into(),
        },
    ))
    .await;
    let rejected = Uuid::now_v7();
    s.event(&queued(rejected, "report")).await;
    s.event(&ev(
        rejected,
        at(1),
        EventKind::Rejected {
            reason: "parameter 'days': must be at most 30".into(),
        },
    ))
    .await;
    let cancelled = Uuid::now_v7();
    s.event(&queued(cancelled, "report")).await;
    s.event(&ev(
        cancelled,
        at(2),
        EventKind::Cancelled { by: "carol".into() },
    ))
    .await;
    let lost = Uuid::now_v7();
    s.event(&queued(lost, "report")).await;
    s.event(&ev(
        lost,
        at(5),
        EventKind::Lost {
            reason: "instance stopped heartbeating".into(),
        },
    ))
    .await;
    let running = Uuid::now_v7();
    s.event(&queued(running, "report")).await;
    s.event(&ev(
        running,
        at(1),
        EventKind::Started {
            pid: 7,
            argv: vec!["/bin/report".into()],
            hostname: "web-2".into(),
            tree: TreeMode::ProcessGroup,
        },
    ))
    .await;

    // Audit decisions.
    let decision = |allowed: bool, action: &str| AuditEvent {
        id: Uuid::now_v7(),
        at: Utc::now(),
        actor: Some("bob".into()),
        action: action.into(),
        target: Some(killed.to_string()),
        allowed,
        reason: if allowed { "bob has kill_any" } else { "no" }.into(),
        source: "127.0.0.1:5000".into(),
        via: Via::Websocket,
    };
    let allowed = decision(true, "jobs.kill");
    let denied = decision(false, "jobs.delete");
    s.publish_audit(KIND_DECISION, &allowed).await;
    s.publish_audit(KIND_DECISION, &denied).await;
    let malformed = AuditEvent {
        actor: None,
        reason: "the request body is not JSON".into(),
        ..decision(false, "jobs.submit")
    };
    s.publish_audit(KIND_MALFORMED, &malformed).await;

    // A finished job that is then deleted.
    let deleted = Uuid::now_v7();
    s.event(&queued(deleted, "report")).await;
    s.event(&ev(deleted, at(2), exited(JobState::Succeeded, Some(0), 1)))
        .await;
    s.chunk(deleted, 1, OutputStream::Stdout, b"secret\n").await;

    eventually("everything stored", Duration::from_secs(20), async || {
        count(&db, "audit_log", "").await == 3
            && count(&db, "job_output", "").await == 6
            && count(&db, "job_events", "").await == 15
            && count(&db, "executions", "").await == 7
    })
    .await;

    let get = async |id: Uuid| -> StoredJob {
        unwrap_reply(
            s.ask(STORE_JOBS_GET, serde_json::json!({"job_id": id}))
                .await,
        )
    };
    let k = get(killed).await;
    assert_eq!(k.record.state, JobState::Killed);
    assert_eq!(k.record.spec.command, "report");
    assert_eq!(k.record.spec.requested_by, "alice");
    assert_eq!(k.record.ended_by.as_deref(), Some("bob"));
    assert_eq!(k.record.signal.as_deref(), Some("SIGTERM"));
    assert_eq!(k.record.instance, Some(inst));
    assert_eq!(k.record.hostname.as_deref(), Some("web-1"));
    assert_eq!(
        k.argv.as_deref(),
        Some(&["/bin/report".to_string(), "--days=7".into()][..])
    );
    assert_eq!(k.pid, Some(4242));
    assert_eq!(k.peak_rss_bytes, Some(3 << 20));
    assert_eq!(k.result, Some(serde_json::json!({"rows": 2})));
    assert_eq!(k.tree.as_ref().map(|t| t.leftover), Some(1));
    assert_eq!(
        k.record.started_at.map(|t| t.timestamp_micros()),
        Some(at(1).timestamp_micros())
    );
    assert!(k.ended_at.is_some());

    let page: OutputPage = unwrap_reply(
        s.ask(STORE_JOBS_OUTPUT, serde_json::json!({"job_id": killed}))
            .await,
    );
    let mut got: Vec<(u64, OutputStream, Vec<u8>)> = page
        .chunks
        .into_iter()
        .map(|c| (c.seq, c.stream, c.data))
        .collect();
    let (seq, stream, said) = got.pop().unwrap();
    let said = String::from_utf8(said).unwrap();
    assert_eq!((seq, stream), (5, OutputStream::System));
    assert!(
        said.starts_with(
            "[taskwire] chunk 5 of this log cannot be read: output chunk: an lz4 chunk is corrupt"
        ),
        "{said}"
    );
    assert_eq!(
        got,
        vec![
            (1, OutputStream::Stdout, b"out\n".to_vec()),
            (2, OutputStream::Stderr, b"err\xff\n".to_vec()),
            (3, OutputStream::System, b"KILLED\n".to_vec()),
            (4, OutputStream::Stdout, log),
        ]
    );
    assert_eq!(page.next_seq, None);
    assert_eq!(count(&db, "job_output", "encoding = 'lz4'").await, 2);

    let f = get(spawn_failed).await;
    assert_eq!(f.record.state, JobState::Failed);
    assert_eq!(
        f.record.error.as_deref(),
        Some("No such file or directory (os error 2)")
    );
    assert_eq!(f.argv.as_deref(), Some(&["/nope".to_string()][..]));
    assert_eq!(get(rejected).await.record.state, JobState::Failed);
    let c = get(cancelled).await;
    assert_eq!(c.record.state, JobState::Cancelled);
    assert_eq!(c.record.ended_by.as_deref(), Some("carol"));
    let l = get(lost).await;
    assert_eq!(l.record.state, JobState::Lost);
    assert_eq!(
        l.record.error.as_deref(),
        Some("instance stopped heartbeating")
    );
    let r = get(running).await;
    assert_eq!(r.record.state, JobState::Running);
    assert_eq!(r.pid, Some(7));
    assert_eq!(count(&db, "audit_log", "allowed = false").await, 2);

    // Deleting removes the job's rows and keeps it deleted when its events come again.
    s.audit_deleted(deleted).await;
    eventually("deleted job gone", Duration::from_secs(20), async || {
        count(&db, "executions", "").await == 6
    })
    .await;
    assert_eq!(count(&db, "deleted_jobs", "").await, 1);
    let gone: StoreReply<StoredJob> = s
        .ask(STORE_JOBS_GET, serde_json::json!({"job_id": deleted}))
        .await;
    assert!(
        matches!(&gone, StoreReply::Error(e) if e.code == StoreErrorCode::NotFound),
        "{gone:?}"
    );
    // A late chunk and a replayed event of the deleted job, then a marker to know they passed.
    s.chunk(deleted, 2, OutputStream::Stdout, b"late\n").await;
    s.js.publish(
        s.ns.event(&taskwire_core::names::Origin::Control, &deleted),
        serde_json::to_vec(&queued(deleted, "report"))
            .unwrap()
            .into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let marker = Uuid::now_v7();
    s.event(&queued(marker, "marker")).await;
    s.chunk(marker, 1, OutputStream::Stdout, b"m").await;
    eventually(
        "marker stored, nothing of the deleted job back",
        Duration::from_secs(20),
        async || count(&db, "executions", "").await == 7 && count(&db, "job_output", "").await == 6,
    )
    .await;
    // (Had the late chunk or the replayed event been stored, the counts above would be 7 and 8.)
    w.stop().await;
}

impl Stack {
    pub async fn audit_deleted(&self, job: Uuid) {
        let d = JobDeleted {
            job_id: job,
            at: Utc::now(),
            by: "alice".into(),
        };
        self.js
            .publish(
                self.ns.audit(KIND_JOB_DELETED),
                serde_json::to_vec(&d).unwrap().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_kind_lands_in_its_table_on_sqlite() {
    every_kind(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_kind_lands_in_its_table_on_postgres() {
    every_kind(Backend::Postgres).await;
}
