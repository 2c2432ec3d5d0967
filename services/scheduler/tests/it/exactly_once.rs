//! Fifty schedules firing every second for a minute across three replicas, one of them
//! killed and restarted meanwhile: every fire happens, once, with one job each.

use crate::helpers::*;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const SCHEDULES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fire_happens_exactly_once_across_replicas_while_one_dies() {
    let mut s = Stack::new().await;
    // A generous grace: under this load no fire may count as missed while replicas run.
    let env = [("TASKWIRE_SCHEDULER__MISFIRE_GRACE", "30s")];
    for _ in 0..3 {
        s.start_replica(&env);
    }
    let mut ids = Vec::new();
    for i in 0..SCHEDULES {
        // Half cron (every second), half interval; overlap allow, so every fire makes a job.
        let body = if i % 2 == 0 {
            json!({"command": "tick", "kind": "cron", "cron": "* * * * * *", "overlap": "allow", "name": format!("s{i}")})
        } else {
            json!({"command": "tick", "kind": "interval", "every": "1s", "overlap": "allow", "name": format!("s{i}")})
        };
        let v = s.schedule("alice", body).await;
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    s.kill_replica(0);
    tokio::time::sleep(Duration::from_secs(15)).await;
    s.start_replica(&env);
    tokio::time::sleep(Duration::from_secs(25)).await;
    // Pause everything, then let the fires in flight finish.
    let mut paused_at: Vec<DateTime<Utc>> = Vec::new();
    for id in &ids {
        let (status, v) = s
            .post("alice", &format!("/api/v1/schedules/{id}/pause"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        paused_at.push(v["updated_at"].as_str().unwrap().parse().unwrap());
    }
    let mut all_jobs = BTreeSet::new();
    let mut total = 0;
    for (i, id) in ids.iter().enumerate() {
        let (_, sched) = s.get("alice", &format!("/api/v1/schedules/{id}")).await;
        let since: DateTime<Utc> = sched["active_since"].as_str().unwrap().parse().unwrap();
        let h = s
            .history_until(id, Duration::from_secs(60), |h| {
                h.iter()
                    .all(|f| f["state"] != "claimed" && f["state"] != "waiting")
            })
            .await;
        let times: Vec<DateTime<Utc>> = h
            .iter()
            .map(|f| f["fire_at"].as_str().unwrap().parse().unwrap())
            .collect();
        // Every fire from the first second after creation to the pause, each once.
        let first = times.first().copied().unwrap();
        let last = times.last().copied().unwrap();
        assert!(
            first - since <= chrono::Duration::seconds(1),
            "schedule {i}: first fire {first} long after {since}"
        );
        assert!(
            paused_at[i] - last <= chrono::Duration::seconds(3),
            "schedule {i}: stalled at {last}, paused at {}",
            paused_at[i]
        );
        let secs = (last - first).num_seconds() as usize + 1;
        assert_eq!(
            times.len(),
            secs,
            "schedule {i}: gaps or doubles in {times:?}"
        );
        for f in &h {
            assert_eq!(f["state"], "submitted", "schedule {i}: {f}");
            let job = f["job_id"].as_str().unwrap().to_string();
            assert!(all_jobs.insert(job.clone()), "job {job} made twice");
        }
        total += h.len();
    }
    assert!(total >= SCHEDULES * 55, "{total} fires in about a minute");
    // One job per fire in the job store, none extra.
    let jobs = scheduled_jobs(&s).await;
    assert_eq!(
        jobs, all_jobs,
        "jobs made by schedules differ from the fires"
    );
}

/// Ids of the jobs in `tw_jobs` submitted by schedules.
async fn scheduled_jobs(s: &Stack) -> BTreeSet<String> {
    use futures::StreamExt;
    let mut keys = s.topo.jobs.keys().await.unwrap();
    let mut out = BTreeSet::new();
    while let Some(k) = keys.next().await {
        let k = k.unwrap();
        if let Some(v) = s.topo.jobs.get(&k).await.unwrap() {
            let r: Value = serde_json::from_slice(&v).unwrap();
            if r["via"] == "schedule" {
                out.insert(k);
            }
        }
    }
    out
}
