//! The fires bucket forgets keys `fires_max_age` after their last write: a schedule's
//! progress must outlive that (or its past fires would be taken again), and one-shot
//! schedules are removed once their history is gone.

use crate::helpers::*;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use taskwire_core::topology::TopologyConfig;
use taskwire_core::wire::{FireRecord, FireState};

/// Fire keys kept two seconds only, so the test sees what a month does in production.
async fn forgetful() -> Stack {
    Stack::with_topology(TopologyConfig {
        fires_max_age: Duration::from_secs(2),
        ..TopologyConfig::default()
    })
    .await
}

/// The keys a bucket holds now.
async fn keys(kv: &async_nats::jetstream::kv::Store) -> Vec<String> {
    match kv.keys().await {
        Ok(k) => k.filter_map(|k| async move { k.ok() }).collect().await,
        Err(_) => Vec::new(),
    }
}

/// The `tick` jobs, as root sees them.
async fn ticks(s: &Stack) -> Vec<Value> {
    let (status, v) = s.get("root", "/api/v1/jobs?command=tick&limit=500").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["jobs"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_is_not_taken_again_when_the_bucket_forgets_its_progress() {
    let mut s = forgetful().await;
    // Every claim and outcome of every fire, as the replicas write them.
    let mut writes = s.topo.fires.watch("f.>").await.unwrap();
    s.start_replica(&[]);
    // Fires 5 s apart, more than twice as long as the bucket keeps a key.
    let made = s
        .schedule(
            "alice",
            json!({"command": "tick", "kind": "interval", "every": "5s", "misfire": "run_once", "overlap": "allow"}),
        )
        .await;
    let id = made["id"].as_str().unwrap().to_string();
    // Three fires submitted, each claimed once. A fire taken again after its progress was
    // forgotten (2 s after its last write) would be claimed a second time (the job itself
    // would then be stopped only by the dispatch stream's two-minute de-duplication).
    let mut claims: Vec<DateTime<Utc>> = Vec::new();
    let mut submitted = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while submitted < 3 {
        let entry = tokio::time::timeout_at(deadline, writes.next())
            .await
            .unwrap_or_else(|_| panic!("fires missing; claims {claims:?}"))
            .unwrap()
            .unwrap();
        if entry.operation != async_nats::jetstream::kv::Operation::Put {
            continue;
        }
        let fire: FireRecord = serde_json::from_slice(&entry.value).unwrap();
        match fire.state {
            FireState::Claimed => {
                assert!(
                    !claims.contains(&fire.fire_at),
                    "the fire at {} was taken again; claims {claims:?}",
                    fire.fire_at
                );
                claims.push(fire.fire_at);
            }
            FireState::Submitted => submitted += 1,
            other => panic!("fire at {}: {other:?} ({:?})", fire.fire_at, fire.reason),
        }
    }
    let (status, _) = s
        .post("alice", &format!("/api/v1/schedules/{id}/pause"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_schedules_run_once_then_are_removed_with_their_history() {
    let mut s = forgetful().await;
    s.start_replica(&[]);
    // Far enough ahead to be taken as delayed (more than a second) after the round trip.
    let at = Utc::now() + chrono::Duration::seconds(3);
    let once = s
        .schedule(
            "alice",
            json!({"command": "tick", "kind": "once", "at": at, "misfire": "run_once"}),
        )
        .await;
    let once = once["id"].as_str().unwrap().to_string();
    let (status, delayed) = s.delayed_tick(at).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{delayed}");
    assert_eq!(delayed["state"], "scheduled", "{delayed}");
    let job = delayed["job_id"].as_str().unwrap().to_string();

    // Gone from the schedules once fired and older than the bucket's memory.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, v) = s.get("alice", &format!("/api/v1/schedules/{once}")).await;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(status, StatusCode::OK, "{v}");
        assert!(Instant::now() < deadline, "never removed: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The delayed job's schedule and its job index go too: the bucket ends up empty, and so
    // do the progress keys.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = keys(&s.topo.schedules).await;
        let progress: Vec<String> = keys(&s.topo.fires)
            .await
            .into_iter()
            .filter(|k| k.starts_with("c."))
            .collect();
        if left.is_empty() && progress.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {left:?} {progress:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each ran exactly once; the delayed job reads as the job it became, not as waiting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ticks(&s).await.len(), 2);
    let (status, got) = s.get("alice", &format!("/api/v1/jobs/{job}")).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["state"], "succeeded", "{got}");
    let (_, listed) = s.get("alice", "/api/v1/jobs").await;
    assert!(
        listed["scheduled"].as_array().is_none_or(|a| a.is_empty()),
        "{listed}"
    );
}
