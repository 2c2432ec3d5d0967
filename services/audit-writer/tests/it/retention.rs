//! Retention prunes only what is old, and by default keeps executions and the audit log.

use crate::helpers::*;
use chrono::Utc;
use std::collections::BTreeMap;
use std::time::Duration;
use taskwire_audit_writer::RetentionConfig;
use taskwire_audit_writer::retention::{Pruned, prune};
use taskwire_core::wire::audit::KIND_DECISION;
use taskwire_core::wire::{AuditEvent, EventKind, JobState, OutputStream, Via};
use uuid::Uuid;

async fn old_and_new(backend: Backend) {
    let s = Stack::new(backend).await;
    let w = s.writer().await;
    let db = s.db().await;
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    // An old job (its events 40 days old) and a recent one, each with output.
    for (stored, (age, seq_data)) in [(40, b"old\n"), (1, b"new\n")].into_iter().enumerate() {
        let id = Uuid::now_v7();
        let at = days(age);
        s.event(&ev(
            id,
            at,
            EventKind::Queued {
                spec: spec(id, "report", "alice", at, BTreeMap::new()),
            },
        ))
        .await;
        s.event(&ev(id, at, exited(JobState::Succeeded, Some(0), 1)))
            .await;
        s.chunk(id, 1, OutputStream::Stdout, seq_data).await;
        s.publish_audit(
            KIND_DECISION,
            &AuditEvent {
                id: Uuid::now_v7(),
                at,
                actor: Some("alice".into()),
                action: "jobs.submit".into(),
                target: Some(id.to_string()),
                allowed: true,
                reason: "ok".into(),
                source: "127.0.0.1:1".into(),
                via: Via::Http,
            },
        )
        .await;
        // Stored one after the other, the old entry comes first in its hash chain (retention
        // deletes a chain from its start only).
        eventually(
            "the audit entry stored",
            Duration::from_secs(20),
            async || count(&db, "audit_log", "").await == stored as i64 + 1,
        )
        .await;
    }
    eventually("stored", Duration::from_secs(20), async || {
        count(&db, "job_output", "").await == 2 && count(&db, "audit_log", "").await == 2
    })
    .await;
    // Output chunks carry the time they reached the stream (now): age them as if 40 days old.
    {
        use sea_orm::ConnectionTrait;
        let cutoff_new = days(2).timestamp_micros();
        db.execute_unprepared(&format!(
            "UPDATE job_output SET at_us = {} WHERE job_id IN (SELECT job_id FROM executions WHERE queued_at_us < {cutoff_new})",
            days(40).timestamp_micros()
        ))
        .await
        .unwrap();
    }

    let defaults = RetentionConfig {
        output_max_age: Some(Duration::from_secs(30 * 86400)),
        events_max_age: Some(Duration::from_secs(30 * 86400)),
        ..RetentionConfig::default()
    };
    let p = prune(w.database(), &defaults, now).await.unwrap();
    assert_eq!(
        p,
        Pruned {
            output: 1,
            events: 2,
            executions: 0,
            audit: 0
        }
    );
    assert_eq!(count(&db, "job_output", "").await, 1);
    assert_eq!(count(&db, "job_events", "").await, 2);
    assert_eq!(count(&db, "executions", "").await, 2, "executions kept");
    assert_eq!(count(&db, "audit_log", "").await, 2, "audit log kept");

    let everything = RetentionConfig {
        executions_max_age: Some(Duration::from_secs(30 * 86400)),
        audit_max_age: Some(Duration::from_secs(30 * 86400)),
        ..defaults
    };
    let p = prune(w.database(), &everything, now).await.unwrap();
    assert_eq!((p.executions, p.audit, p.output, p.events), (1, 1, 0, 0));
    assert_eq!(count(&db, "executions", "").await, 1);
    assert_eq!(count(&db, "audit_log", "").await, 1);
    // A second pass finds nothing more.
    assert_eq!(
        prune(w.database(), &everything, now).await.unwrap(),
        Pruned::default()
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_only_what_is_old_on_sqlite() {
    old_and_new(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_only_what_is_old_on_postgres() {
    old_and_new(Backend::Postgres).await;
}
