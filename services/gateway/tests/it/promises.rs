//! The promises the fast submit and kill paths keep: nothing is dispatched before its decision
//! is stored, a submit that cannot be audited leaves no job behind, and a kill decided from
//! what the gateway already knew is still audited first, ends the whole tree and leaves the
//! killed-by line in the log.

use crate::helpers::*;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use taskwire_core::wire::EventKind;
use uuid::Uuid;

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

fn pid_in(dir: &std::path::Path, f: &str) -> i32 {
    std::fs::read_to_string(dir.join(f))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_audited_recorded_and_announced_before_it_starts() {
    let s = Stack::new().await;
    s.ready().await;
    let job = s.run("alice", "echo", json!({"text": "hi"})).await;
    assert_eq!(job["state"], "succeeded");
    let id: Uuid = job["job_id"].as_str().unwrap().parse().unwrap();
    let events = s.events(&id).await;
    let started = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Started { .. }))
        .expect("a started event");
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Queued { .. })),
        "the queued event is stored: {events:?}"
    );
    let audit = s.audit().await;
    let decision = audit
        .iter()
        .find(|e| {
            e.action == "jobs.submit"
                && e.allowed
                && e.target
                    .as_deref()
                    .is_some_and(|t| t.contains(&id.to_string()))
        })
        .expect("the submit's decision is in the audit log");
    // The decision was stored before the dispatch message went out, so before the claim.
    assert!(decision.at <= started.at, "{decision:?} / {started:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_whose_decision_cannot_be_stored_leaves_no_job() {
    let s = Stack::new().await;
    s.ready().await;
    // Audit events have nowhere to go.
    let admin = async_nats::jetstream::new(s.admin_client("test-admin").await);
    admin
        .delete_stream(s.ns.stream_events())
        .await
        .expect("delete the events stream");
    let (status, body) = s.submit("alice", "echo", json!({"text": "hi"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // The record made while the decision was being stored is gone, and nothing was
    // dispatched.
    let keys: Vec<String> = s
        .topo
        .jobs
        .keys()
        .await
        .unwrap()
        .filter_map(|k| async move { k.ok() })
        .collect()
        .await;
    assert!(keys.is_empty(), "job records left behind: {keys:?}");
    let dispatched = s
        .topo
        .jobs_stream
        .clone()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence;
    assert_eq!(dispatched, 0, "a dispatch message went out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_of_a_job_seen_running_is_audited_first_and_ends_the_tree() {
    let s = Stack::new().await;
    s.ready().await;
    let dir = tempfile::tempdir().unwrap();
    let (status, job) = s
        .submit(
            "alice",
            "stubborn",
            json!({"dir": dir.path().display().to_string()}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["job_id"].as_str().unwrap().to_string();
    // Read as running: the gateway now knows the job's owner and instance.
    s.wait_job("alice", &id, "ran", |b| b["state"] == "running")
        .await;
    taskwire_testkit::eventually(
        "the job started its child and escapee",
        Duration::from_secs(20),
        async || dir.path().join("escapee").exists() && dir.path().join("child").exists(),
    )
    .await;
    // Decided from what the gateway knew: still refused to bob, audited.
    let (status, body) = s
        .post("bob", &format!("/api/v1/jobs/{id}/kill"), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, reply) = s
        .post("alice", &format!("/api/v1/jobs/{id}/kill"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["outcome"], "signalled");
    assert_eq!(reply["state"], "killed");
    assert_eq!(reply["survivors"], 0);
    for f in ["child", "escapee"] {
        let pid = pid_in(dir.path(), f);
        assert!(!alive(pid), "{f} ({pid}) survived the kill");
    }
    let log = s
        .http
        .get(s.url(&format!("/api/v1/jobs/{id}/output?stream=system")))
        .bearer_auth(token("alice"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first = log.lines().next().unwrap_or_default();
    assert!(first.starts_with("PROCESS KILLED BY alice AT "), "{log}");

    let uuid: Uuid = id.parse().unwrap();
    let exited = s.exited(&uuid).await;
    let audit = s.audit().await;
    assert!(audit.iter().any(|e| e.action == "jobs.kill"
        && e.actor.as_deref() == Some("bob")
        && !e.allowed
        && e.target.as_deref() == Some(id.as_str())));
    let allowed = audit
        .iter()
        .find(|e| {
            e.action == "jobs.kill"
                && e.actor.as_deref() == Some("alice")
                && e.allowed
                && e.target.as_deref() == Some(id.as_str())
        })
        .expect("alice's kill is in the audit log");
    assert!(allowed.at <= exited.at, "{allowed:?} / {exited:?}");
    // It ended: killing it again is a conflict, from the record.
    let (status, _) = s
        .post("alice", &format!("/api/v1/jobs/{id}/kill"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}
