//! Overlap and misfire policies, a revoked role, and delayed jobs.

use crate::helpers::*;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_skip_skips_and_queue_waits_for_the_previous_job() {
    let mut s = Stack::new().await;
    s.start_replica(&[]);
    // Each job runs 2.5 s; the schedule fires every second.
    let skip = s
        .schedule("alice", json!({"command": "slow", "params": {"secs": "2.5"}, "kind": "interval", "every": "1s", "overlap": "skip"}))
        .await;
    let queue = s
        .schedule("alice", json!({"command": "slow", "params": {"secs": "2.5"}, "kind": "interval", "every": "1s", "overlap": "queue"}))
        .await;
    let skip_id = skip["id"].as_str().unwrap();
    let queue_id = queue["id"].as_str().unwrap();
    let h = s
        .history_until(skip_id, Duration::from_secs(30), |h| {
            h.iter().filter(|f| f["state"] == "submitted").count() >= 2
        })
        .await;
    let st = states(&h);
    // submitted, then skipped while it runs, then submitted again.
    assert_eq!(st[0], "submitted", "{st:?}");
    let second = st.iter().skip(1).position(|x| x == "submitted").unwrap() + 1;
    assert!(
        second >= 3,
        "a 2.5 s job skips at least two 1 s fires: {st:?}"
    );
    assert!(st[1..second].iter().all(|x| x == "skipped"), "{st:?}");
    assert!(
        h[1]["reason"]
            .as_str()
            .unwrap()
            .contains("still running (overlap: skip)")
    );
    // Each submitted job started only after the previous one ended.
    let h = s
        .history_until(queue_id, Duration::from_secs(30), |h| {
            h.iter().filter(|f| f["state"] == "submitted").count() >= 3
        })
        .await;
    let st = states(&h);
    assert_eq!(st[0], "submitted", "{st:?}");
    assert!(
        st.iter().any(|x| x == "skipped"),
        "later fires skip while one waits: {st:?}"
    );
    let submitted: Vec<&serde_json::Value> =
        h.iter().filter(|f| f["state"] == "submitted").collect();
    // The second run was a waiting fire: it ran after the first job ended.
    let first_job = submitted[0]["job_id"].as_str().unwrap();
    let second_job = submitted[1]["job_id"].as_str().unwrap();
    let (_, j1) = s.get("root", &format!("/api/v1/jobs/{first_job}")).await;
    let (_, j2) = s.get("root", &format!("/api/v1/jobs/{second_job}")).await;
    let end1: DateTime<Utc> = j1["finished_at"].as_str().unwrap().parse().unwrap();
    let start2: DateTime<Utc> = j2["queued_at"].as_str().unwrap().parse().unwrap();
    assert!(
        start2 >= end1,
        "queued run {start2} began before the previous ended {end1}"
    );
    let waited: DateTime<Utc> = submitted[1]["fire_at"].as_str().unwrap().parse().unwrap();
    assert!(
        start2 - waited > chrono::Duration::milliseconds(500),
        "it waited"
    );
    for id in [skip_id, queue_id] {
        s.post("alice", &format!("/api/v1/schedules/{id}/pause"), json!({}))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_fires_are_skipped_or_run_once_as_the_schedule_says() {
    let mut s = Stack::new().await;
    // No scheduler runs while the fires fall due.
    let skip = s
        .schedule("alice", json!({"command": "tick", "kind": "interval", "every": "1s", "misfire": "skip", "overlap": "allow"}))
        .await;
    let once = s
        .schedule("alice", json!({"command": "tick", "kind": "interval", "every": "1s", "misfire": "run_once", "overlap": "allow"}))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    s.start_replica(&[("TASKWIRE_SCHEDULER__MISFIRE_GRACE", "1s")]);
    let skip_id = skip["id"].as_str().unwrap();
    let once_id = once["id"].as_str().unwrap();
    let h = s
        .history_until(skip_id, Duration::from_secs(30), |h| {
            h.iter().any(|f| f["state"] == "missed") && h.iter().any(|f| f["state"] == "submitted")
        })
        .await;
    let missed: Vec<_> = h.iter().filter(|f| f["state"] == "missed").collect();
    assert_eq!(missed.len(), 1, "one entry for the whole outage: {h:?}");
    let reason = missed[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("while no scheduler ran") && reason.contains("not run (misfire: skip)"),
        "{reason}"
    );
    // Nothing of the outage ran: every submitted fire is after the missed ones.
    let missed_at: DateTime<Utc> = missed[0]["fire_at"].as_str().unwrap().parse().unwrap();
    for f in h.iter().filter(|f| f["state"] == "submitted") {
        let at: DateTime<Utc> = f["fire_at"].as_str().unwrap().parse().unwrap();
        assert!(at > missed_at, "{f}");
    }
    let h = s
        .history_until(once_id, Duration::from_secs(30), |h| {
            h.iter().filter(|f| f["state"] == "submitted").count() >= 2
        })
        .await;
    let st = states(&h);
    // The outage's fires: the latest runs once, those before it are one missed entry.
    assert_eq!(st[0], "missed", "{st:?}");
    assert_eq!(st[1], "submitted", "{st:?}");
    assert!(
        h[0]["reason"]
            .as_str()
            .unwrap()
            .contains("runs once for them (misfire: run_once)")
    );
    for id in [skip_id, once_id] {
        s.post("alice", &format!("/api/v1/schedules/{id}/pause"), json!({}))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_role_makes_the_next_fire_denied_and_recorded() {
    let mut s = Stack::new().await;
    s.start_replica(&[]);
    let v = s
        .schedule(
            "alice",
            json!({"command": "tick", "kind": "interval", "every": "1s", "overlap": "allow"}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    s.history_until(&id, Duration::from_secs(30), |h| {
        h.iter().any(|f| f["state"] == "submitted")
    })
    .await;
    // The administrator takes `tick` away from alice's role.
    s.start_gateway(true).await;
    let h = s
        .history_until(&id, Duration::from_secs(30), |h| {
            h.iter().any(|f| f["state"] == "denied")
        })
        .await;
    let denied = h.iter().find(|f| f["state"] == "denied").unwrap();
    assert!(denied["job_id"].is_null());
    let reason = denied["reason"].as_str().unwrap();
    assert!(reason.contains("tick"), "{reason}");
    // Once denied, it stays denied: nothing is submitted after the first denial.
    let first_denied: DateTime<Utc> = denied["fire_at"].as_str().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let h = s.history(&id, "2000-01-01T00:00:00Z").await;
    for f in &h {
        let at: DateTime<Utc> = f["fire_at"].as_str().unwrap().parse().unwrap();
        if at > first_denied {
            assert_eq!(f["state"], "denied", "{f}");
        }
    }
    s.post("alice", &format!("/api/v1/schedules/{id}/pause"), json!({}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_shows_as_scheduled_and_runs_at_not_before_its_time() {
    let mut s = Stack::new().await;
    s.start_replica(&[]);
    // A delayed job can be cancelled before its time: it never runs.
    let later = Utc::now() + chrono::Duration::seconds(2);
    let (_, v) = s.delayed_tick(later).await;
    let cancelled = v["job_id"].as_str().unwrap().to_string();
    let (status, r) = s
        .post(
            "alice",
            &format!("/api/v1/jobs/{cancelled}/stop"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["outcome"], "cancelled");
    // Far off, so the listing below cannot race its time: shown as waiting, to those who may
    // read it only.
    let far = Utc::now() + chrono::Duration::hours(1);
    let (status, v) = s.delayed_tick(far).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["state"], "scheduled");
    let waiting = v["job_id"].as_str().unwrap().to_string();
    let (status, got) = s.get("alice", &format!("/api/v1/jobs/{waiting}")).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["state"], "scheduled");
    let (status, _) = s.get("dave", &format!("/api/v1/jobs/{waiting}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s.get("erin", &format!("/api/v1/jobs/{waiting}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let listed = |v: &Value, job: &str| {
        v["scheduled"]
            .as_array()
            .is_some_and(|a| a.iter().any(|j| j["job_id"] == job))
    };
    let (_, alices) = s.get("alice", "/api/v1/jobs").await;
    assert!(listed(&alices, &waiting), "{alices}");
    assert_eq!(alices["scheduled"][0]["state"], "scheduled", "{alices}");
    let (_, roots) = s.get("root", "/api/v1/jobs").await;
    assert!(listed(&roots, &waiting), "{roots}");
    // Another reader of her own jobs does not see it, nor does a filter on another user.
    let (status, erins) = s.get("erin", "/api/v1/jobs").await;
    assert_eq!(status, StatusCode::OK, "{erins}");
    assert!(!listed(&erins, &waiting), "{erins}");
    let (_, other) = s.get("alice", "/api/v1/jobs?user=root").await;
    assert!(!listed(&other, &waiting), "{other}");
    let (status, r) = s
        .post("alice", &format!("/api/v1/jobs/{waiting}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (_, alices) = s.get("alice", "/api/v1/jobs").await;
    assert!(
        !listed(&alices, &waiting),
        "cancelled, not waiting: {alices}"
    );

    let at = Utc::now() + chrono::Duration::seconds(3);
    let (status, v) = s.delayed_tick(at).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["state"], "scheduled");
    let job = v["job_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, got) = s.get("alice", &format!("/api/v1/jobs/{job}")).await;
        if got["state"] == "succeeded" {
            let queued: DateTime<Utc> = got["queued_at"].as_str().unwrap().parse().unwrap();
            let started: DateTime<Utc> = got["started_at"].as_str().unwrap().parse().unwrap();
            assert!(queued >= at, "queued {queued} before {at}");
            assert!(started >= at);
            assert!(
                queued - at < chrono::Duration::seconds(3),
                "ran late: {queued} for {at}"
            );
            assert_eq!(got["via"], "schedule");
            assert_eq!(got["requested_by"], "alice");
            // Once run, it is a job like any other, no longer waiting.
            let (_, after) = s.get("alice", "/api/v1/jobs").await;
            assert!(!listed(&after, &job), "{after}");
            assert!(
                after["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|j| j["job_id"] == job.as_str()),
                "{after}"
            );
            break;
        }
        if got["state"] != "scheduled" {
            assert!(Utc::now() >= at, "left 'scheduled' before its time: {got}");
        }
        assert!(std::time::Instant::now() < deadline, "never ran: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Well after its time, the cancelled one reads as cancelled, by whom, and never started.
    let (status, got) = s.get("alice", &format!("/api/v1/jobs/{cancelled}")).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["state"], "cancelled", "{got}");
    assert_eq!(got["ended_by"], "alice", "{got}");
    assert!(got["started_at"].is_null(), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_jobs_cancelled_at_their_very_time_never_run() {
    let mut s = Stack::new().await;
    s.start_replica(&[]);
    // Forty delayed jobs due at one instant, cancelled around it: some before their fire is
    // taken, some while it is on its way to the gateway, some after the job exists.
    let at = Utc::now() + chrono::Duration::seconds(3);
    let mut jobs = Vec::new();
    for _ in 0..40 {
        let (status, v) = s.delayed_tick(at).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        jobs.push(v["job_id"].as_str().unwrap().to_string());
    }
    let start = at - chrono::Duration::milliseconds(100);
    tokio::time::sleep((start - Utc::now()).to_std().unwrap_or_default()).await;
    let cancels = jobs.iter().enumerate().map(|(i, job)| {
        let s = &s;
        async move {
            tokio::time::sleep(Duration::from_millis(8 * i as u64)).await;
            let (status, r) = s
                .post("alice", &format!("/api/v1/jobs/{job}/stop"), json!({}))
                .await;
            (job.clone(), status, r)
        }
    });
    let replies = futures::future::join_all(cancels).await;
    let mut said_cancelled = 0;
    for (job, status, r) in &replies {
        if *status == StatusCode::OK && r["outcome"] == "cancelled" {
            said_cancelled += 1;
            // Cancelled means it never starts: wait for the state to settle, then check.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (status, got) = s.get("alice", &format!("/api/v1/jobs/{job}")).await;
            assert_eq!(status, StatusCode::OK, "{got}");
            assert_eq!(got["state"], "cancelled", "said cancelled, then: {got}");
            assert!(got["started_at"].is_null(), "said cancelled, then: {got}");
        } else {
            // The job was made first: stopped like any job, or already done (this stack runs
            // no kill broker, so stopping a job that exists is answered unavailable).
            assert!(
                [
                    StatusCode::OK,
                    StatusCode::CONFLICT,
                    StatusCode::SERVICE_UNAVAILABLE
                ]
                .contains(status),
                "{job}: {status} {r}"
            );
            assert_ne!(r["outcome"], "cancelled", "{job}: {r}");
        }
    }
    assert!(
        said_cancelled > 0,
        "no cancel came before a job: {replies:?}"
    );
    // A second after, nothing said cancelled has started after all.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (job, status, r) in &replies {
        if *status == StatusCode::OK && r["outcome"] == "cancelled" {
            let (_, got) = s.get("alice", &format!("/api/v1/jobs/{job}")).await;
            assert_eq!(got["state"], "cancelled", "{got}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_that_stopped_half_way_is_finished_by_the_next() {
    use taskwire_core::wire::{JobRecord, JobSpec, JobState, Target, Via};
    let s = Stack::new().await;
    let later = Utc::now() + chrono::Duration::hours(1);
    let (status, v) = s.delayed_tick(later).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let job = v["job_id"].as_str().unwrap().to_string();
    let schedule = v["schedule_id"].as_str().unwrap().to_string();
    // What a cancel leaves when it stops after making the record: the record, the schedule.
    let mut rec = JobRecord::queued(
        JobSpec::new(
            "tick",
            Target::Channel("default".into()),
            "alice",
            Via::Schedule,
        )
        .with_id(job.parse().unwrap()),
    );
    rec.state = JobState::Cancelled;
    rec.ended_by = Some("root".into());
    rec.error = Some("cancelled by root before its time".into());
    rec.finished_at = Some(Utc::now());
    rec.cancelled_before_queued = true;
    s.topo
        .jobs
        .create(&job, serde_json::to_vec(&rec).unwrap().into())
        .await
        .unwrap();
    let (status, _) = s
        .get("alice", &format!("/api/v1/schedules/{schedule}"))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, r) = s
        .post("alice", &format!("/api/v1/jobs/{job}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["outcome"], "cancelled", "{r}");
    assert!(r["message"].as_str().unwrap().contains("by root"), "{r}");
    let (status, _) = s
        .get("alice", &format!("/api/v1/schedules/{schedule}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the schedule is gone");
    let (_, got) = s.get("alice", &format!("/api/v1/jobs/{job}")).await;
    assert_eq!(got["state"], "cancelled", "{got}");
    // Once finished, another stop says the job has ended.
    let (status, r) = s
        .post("alice", &format!("/api/v1/jobs/{job}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{r}");
}
