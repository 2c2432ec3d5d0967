//! History filters and cursor paging return exactly the expected rows, newest first, on
//! SQLite and on PostgreSQL; the audit log likewise.

use crate::helpers::*;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use taskwire_core::wire::audit::KIND_DECISION;
use taskwire_core::wire::history::{STORE_AUDIT_LIST, STORE_JOBS_LIST};
use taskwire_core::wire::{
    AuditEvent, AuditPage, EventKind, JobPage, JobState, StoreErrorCode, StoreReply, TreeMode, Via,
};
use uuid::Uuid;

struct Job {
    id: Uuid,
    user: &'static str,
    command: &'static str,
    state: JobState,
    instance: Uuid,
    at: DateTime<Utc>,
}

async fn ids(s: &Stack, q: serde_json::Value) -> Vec<Uuid> {
    let page: JobPage = unwrap_reply(s.ask(STORE_JOBS_LIST, q).await);
    assert!(page.next.is_none(), "one page expected");
    page.jobs.iter().map(|j| j.record.spec.job_id).collect()
}

fn newest_first<'a>(jobs: impl Iterator<Item = &'a Job>) -> Vec<Uuid> {
    let mut v: Vec<&Job> = jobs.collect();
    v.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    v.into_iter().map(|j| j.id).collect()
}

async fn filters_and_paging(backend: Backend) {
    let s = Stack::new(backend).await;
    let w = s.writer().await;
    let db = s.db().await;
    let (ia, ib) = (Uuid::new_v4(), Uuid::new_v4());
    let base: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let mut jobs = Vec::new();
    for i in 0..40u32 {
        let at = base + chrono::Duration::minutes(i64::from(i / 2)); // pairs share a time
        let j = Job {
            id: Uuid::now_v7(),
            user: if i % 2 == 0 { "alice" } else { "bob" },
            command: if i % 3 == 0 { "backup" } else { "report" },
            state: match i % 4 {
                0 => JobState::Succeeded,
                1 => JobState::Failed,
                2 => JobState::Running,
                _ => JobState::Queued,
            },
            instance: if i % 5 < 2 { ia } else { ib },
            at,
        };
        s.event(&ev(
            j.id,
            at,
            EventKind::Queued {
                spec: spec(j.id, j.command, j.user, at, BTreeMap::new()),
            },
        ))
        .await;
        if j.state != JobState::Queued {
            let mut started = ev(
                j.id,
                at + chrono::Duration::seconds(1),
                EventKind::Started {
                    pid: i,
                    argv: vec![j.command.into()],
                    hostname: "h".into(),
                    tree: TreeMode::Cgroup,
                },
            );
            started.instance = Some(j.instance);
            s.event(&started).await;
        }
        if j.state.is_terminal() {
            let code = if j.state == JobState::Succeeded { 0 } else { 1 };
            let mut e = ev(
                j.id,
                at + chrono::Duration::seconds(2),
                exited(j.state, Some(code), 0),
            );
            e.instance = Some(j.instance);
            s.event(&e).await;
        }
        jobs.push(j);
    }
    eventually("all stored", Duration::from_secs(20), async || {
        count(&db, "job_events", "").await == 20 * 3 + 10 * 2 + 10
    })
    .await;

    let all = newest_first(jobs.iter());
    let mut q = serde_json::json!({"limit": 500});
    assert_eq!(ids(&s, q.clone()).await, all);
    q["user"] = "alice".into();
    assert_eq!(
        ids(&s, q.clone()).await,
        newest_first(jobs.iter().filter(|j| j.user == "alice"))
    );
    let q = serde_json::json!({"command": "backup", "state": "failed", "limit": 500});
    let want = newest_first(
        jobs.iter()
            .filter(|j| j.command == "backup" && j.state == JobState::Failed),
    );
    assert!(!want.is_empty());
    assert_eq!(ids(&s, q).await, want);
    let q = serde_json::json!({"instance": ia, "limit": 500});
    assert_eq!(
        ids(&s, q).await,
        newest_first(
            jobs.iter()
                .filter(|j| j.instance == ia && j.state != JobState::Queued)
        )
    );
    let (since, until) = (
        base + chrono::Duration::minutes(3),
        base + chrono::Duration::minutes(7),
    );
    let q = serde_json::json!({"since": since, "until": until, "limit": 500});
    let want = newest_first(jobs.iter().filter(|j| j.at >= since && j.at < until));
    assert_eq!(want.len(), 8);
    assert_eq!(ids(&s, q).await, want);

    // Paging: every row once, in order, whatever the page size.
    for size in [1u32, 7, 40] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = serde_json::json!({"limit": size});
            if let Some(c) = &cursor {
                q["cursor"] = c.clone().into();
            }
            let page: JobPage = unwrap_reply(s.ask(STORE_JOBS_LIST, q).await);
            assert!(page.jobs.len() <= size as usize);
            seen.extend(page.jobs.iter().map(|j| j.record.spec.job_id));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, all, "page size {size}");
    }

    // Bad queries say what is wrong.
    for bad in [
        serde_json::json!({"cursor": "yesterday"}),
        serde_json::json!({"limit": 0}),
        serde_json::json!({"limit": 501}),
        serde_json::json!({"usr": "alice"}),
    ] {
        let r: StoreReply<JobPage> = s.ask(STORE_JOBS_LIST, bad.clone()).await;
        match r {
            StoreReply::Error(e) => {
                assert_eq!(e.code, StoreErrorCode::InvalidQuery, "{bad}");
                assert!(!e.message.is_empty());
            }
            StoreReply::Ok(_) => panic!("{bad} was accepted"),
        }
    }

    // The audit log.
    let mut entries = Vec::new();
    for i in 0..12u32 {
        let a = AuditEvent {
            id: Uuid::now_v7(),
            at: base + chrono::Duration::seconds(i64::from(i)),
            actor: Some(if i % 3 == 0 { "mallory" } else { "alice" }.into()),
            action: ["jobs.submit", "jobs.kill", "schedules.create"][i as usize % 3].into(),
            target: None,
            allowed: i % 3 != 0,
            reason: "r".into(),
            source: "127.0.0.1:1".into(),
            via: Via::Http,
        };
        s.publish_audit(KIND_DECISION, &a).await;
        entries.push(a);
    }
    eventually("audit stored", Duration::from_secs(20), async || {
        count(&db, "audit_log", "").await == 12
    })
    .await;
    let audit_ids = async |q: serde_json::Value| -> Vec<Uuid> {
        let p: AuditPage = unwrap_reply(s.ask(STORE_AUDIT_LIST, q).await);
        p.entries.iter().map(|e| e.id).collect()
    };
    let want = |f: &dyn Fn(&AuditEvent) -> bool| -> Vec<Uuid> {
        let mut v: Vec<&AuditEvent> = entries.iter().filter(|e| f(e)).collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.at));
        v.into_iter().map(|e| e.id).collect()
    };
    assert_eq!(
        audit_ids(serde_json::json!({"allowed": false})).await,
        want(&|e| !e.allowed)
    );
    assert_eq!(
        audit_ids(serde_json::json!({"action": "jobs."})).await,
        want(&|e| e.action.starts_with("jobs."))
    );
    assert_eq!(
        audit_ids(serde_json::json!({"actor": "alice", "action": "jobs.kill"})).await,
        want(&|e| e.actor.as_deref() == Some("alice") && e.action == "jobs.kill")
    );
    let p: AuditPage = unwrap_reply(
        s.ask(STORE_AUDIT_LIST, serde_json::json!({"limit": 5}))
            .await,
    );
    assert_eq!(p.entries.len(), 5);
    let p2: AuditPage = unwrap_reply(
        s.ask(
            STORE_AUDIT_LIST,
            serde_json::json!({"limit": 10, "cursor": p.next.unwrap()}),
        )
        .await,
    );
    let walked: Vec<Uuid> = p.entries.iter().chain(&p2.entries).map(|e| e.id).collect();
    assert_eq!(walked, want(&|_| true));
    assert!(p2.next.is_none());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_filters_and_paging_are_exact_on_sqlite() {
    filters_and_paging(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_filters_and_paging_are_exact_on_postgres() {
    filters_and_paging(Backend::Postgres).await;
}
