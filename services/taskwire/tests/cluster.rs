//! The production shape, really run: `taskwire up --cluster` (three nats-server nodes at R3,
//! two of each service, the audit store on PostgreSQL), and each part of it killed with
//! SIGKILL in turn while jobs are submitted and a schedule fires every second. Nothing
//! accepted may be lost or run twice, every job ends, every audit event is stored once, every
//! fire is accounted for, and stops sent during a fault still reach their jobs. An
//! executor's own consumer (one replica, in memory) is lost with its node, and a kill broker
//! makes it again on another, on the executor's request, while the node is away.

#![allow(clippy::unwrap_used)]

mod support;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::client::{Client, Trouble, terminal};
use support::cluster::Cluster;
use uuid::Uuid;

/// Jobs submitted over the whole run (at least).
const JOBS: usize = 500;
/// Pause between two submits of the steady load.
const PACE: Duration = Duration::from_millis(150);
/// How long a killed process stays dead before the cluster starts it again: longer than the
/// cluster's registry TTL (20 s), so what depends on a watch of a lost node is seen to
/// recover rather than merely to outlast the fault.
const DOWN_FOR: Duration = Duration::from_secs(25);

/// One job of the steady load.
struct Submitted {
    id: Uuid,
    phase: &'static str,
    trouble: Trouble,
    /// From the first try to the answer.
    took: Duration,
}

/// The faults, in the order: what is killed (a NATS node is chosen when it comes).
const FAULTS: [&str; 7] = [
    "the NATS node leading TW_JOBS",
    "gateway-1",
    "audit-writer-1",
    "scheduler-1",
    "the executor running a job",
    "kill-broker-1",
    "the NATS node holding executor-1's own consumer",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_part_of_the_cluster_dies_in_turn_and_nothing_accepted_is_lost_or_run_twice() {
    let pg = taskwire_testkit::PgDatabase::create().await;
    let state = tempfile::Builder::new()
        .prefix("tw-cluster-")
        .tempdir()
        .unwrap();
    // TW_TEST_KEEP_STATE=1 keeps the state dir (every process's log) to read after a failure.
    let state = match std::env::var_os("TW_TEST_KEEP_STATE") {
        Some(_) => {
            let kept = state.keep();
            println!("state dir (kept): {}", kept.display());
            Err(kept)
        }
        None => Ok(state),
    };
    let state_path = match &state {
        Ok(t) => t.path().to_path_buf(),
        Err(p) => p.clone(),
    };
    let mut cluster = Cluster::start(&state_path, &pg.url(), DOWN_FOR);
    let client = Arc::new(Client::new(cluster.http.clone(), cluster.token.clone()));
    let admin = cluster.admin_client("cluster-test").await;
    let js = taskwire_core::nats::jetstream(admin);
    let guids: Vec<Uuid> = support::cluster::manifest(&cluster.state)["executors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().parse().unwrap())
        .collect();
    wait_for_instances(&client, &guids).await;

    // A schedule that fires every second through all of it.
    let (status, schedule, _) = client
        .call(
            Method::POST,
            "/api/v1/schedules",
            Some(
                &json!({"name": "tick", "command": "hello", "channel": "default",
                          "kind": "interval", "every": "1s"}),
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    let schedule_id = schedule["id"].as_str().unwrap().to_string();

    // The steady load: a job every PACE, each submit retried until accepted.
    let phase = Arc::new(std::sync::Mutex::new("before the faults"));
    let faults_done = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (client, phase, faults_done) = (client.clone(), phase.clone(), faults_done.clone());
        async move {
            let mut out: Vec<Submitted> = Vec::new();
            let mut inflight = futures::stream::FuturesOrdered::new();
            let mut n = 0usize;
            while !(faults_done.load(Ordering::Acquire) && n >= JOBS) {
                n += 1;
                let client = client.clone();
                let now = *phase.lock().unwrap();
                inflight.push_back(async move {
                    let body = json!({"command": "hello", "channel": "default",
                                      "params": {"name": format!("job {n}")}});
                    let began = Instant::now();
                    let (id, trouble) = client.submit(&body).await;
                    Submitted {
                        id,
                        phase: now,
                        trouble,
                        took: began.elapsed(),
                    }
                });
                // One submit every PACE, and at most 32 open at once (the rest wait while an
                // outage holds them).
                let tick = tokio::time::sleep(PACE);
                tokio::pin!(tick);
                loop {
                    tokio::select! {
                        Some(s) = inflight.next(), if !inflight.is_empty() => out.push(s),
                        _ = &mut tick, if inflight.len() < 32 => break,
                    }
                }
            }
            while let Some(s) = inflight.next().await {
                out.push(s);
            }
            out
        }
    });

    // Each fault in turn: a long job running on each executor, the kill, a stop of those
    // jobs while it is down, the process started again, the cluster serving again.
    let mut stops: Vec<(Uuid, &'static str, &'static str)> = Vec::new();
    let mut report = Vec::new();
    for fault in FAULTS {
        let forever: Vec<Uuid> = {
            let mut ids = Vec::new();
            for g in &guids {
                let (id, _) = client
                    .submit(&json!({"command": "forever", "instance": g.to_string()}))
                    .await;
                ids.push(id);
            }
            for id in &ids {
                client
                    .job_until(*id, Duration::from_secs(60), |s| s == "running")
                    .await;
            }
            ids
        };
        let own = format!("inst-{}", guids[0]);
        let name = match fault {
            "the NATS node leading TW_JOBS" => cluster.leader_of(&js, "TW_JOBS").await,
            "the NATS node holding executor-1's own consumer" => {
                cluster.host_of(&js, "TW_INST", &own).await
            }
            "the executor running a job" => "executor-1".to_string(),
            other => other.to_string(),
        };
        *phase.lock().unwrap() = fault;
        let killed_at = Instant::now();
        let starts = cluster.kill9(&name);
        // Stops sent while it is down reach their jobs; the job of a killed executor is not
        // stopped but lost (it died with its executor).
        for (i, id) in forever.iter().enumerate() {
            if name == "executor-1" && i == 0 {
                stops.push((*id, fault, "lost"));
                continue;
            }
            let (status, v, _) = client
                .call(Method::POST, &format!("/api/v1/jobs/{id}/stop"), None, None)
                .await;
            assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "stop of {id} during {fault}: {status} {v}"
            );
            stops.push((*id, fault, "stopped"));
        }
        // With its consumer's node away, a job sent to the instance still starts: the
        // executor made the consumer again on a live node.
        if fault.contains("own consumer") {
            let (id, _) = client
                .submit(&json!({"command": "hello", "instance": guids[0].to_string()}))
                .await;
            let done = client
                .job_until(id, Duration::from_secs(60), terminal)
                .await;
            assert_eq!(done["state"], "succeeded", "during {fault}: {done}");
            report.push(format!(
                "{fault} ({name}): a job sent to the instance ran to its end {:.1} s after the kill",
                killed_at.elapsed().as_secs_f64()
            ));
            let host = cluster.host_of(&js, "TW_INST", &own).await;
            assert_ne!(host, name, "{own} is still on the killed node");
        }
        cluster
            .restarted(&name, starts, DOWN_FOR + Duration::from_secs(60))
            .await;
        let back_at = killed_at.elapsed();
        // Serving again: a job submitted now runs to its end.
        let (probe, _) = client
            .submit(&json!({"command": "hello", "channel": "default"}))
            .await;
        let done = client
            .job_until(probe, Duration::from_secs(90), terminal)
            .await;
        assert_eq!(done["state"], "succeeded", "after {fault}: {done}");
        wait_for_instances(&client, &guids).await;
        report.push(format!(
            "{fault} ({name}): started again after {:.1} s, a new job ran to its end {:.1} s after the kill",
            back_at.as_secs_f64(),
            killed_at.elapsed().as_secs_f64()
        ));
    }
    *phase.lock().unwrap() = "after the faults";
    faults_done.store(true, Ordering::Release);
    let submitted = load.await.unwrap();
    assert!(submitted.len() >= JOBS);

    // Pause the schedule; its fires so far are what is checked.
    let (status, v, _) = client
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{schedule_id}/pause"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Every accepted job ends, and the load's all succeed.
    let mut started_at: Vec<(chrono::DateTime<chrono::Utc>, &'static str)> = Vec::new();
    // (A load job the killed executor was running is lost with it, by design: never re-run.)
    let mut lost_with_executor = HashSet::new();
    for s in &submitted {
        let r = client
            .job_until(s.id, Duration::from_secs(120), terminal)
            .await;
        if r["state"] == "lost"
            && r["instance"] == guids[0].to_string()
            && r["error"].as_str().is_some_and(|e| e.contains("restarted"))
        {
            lost_with_executor.insert(s.id);
        } else {
            assert_eq!(r["state"], "succeeded", "job {} ({}): {r}", s.id, s.phase);
        }
        started_at.push((r["started_at"].as_str().unwrap().parse().unwrap(), s.phase));
    }
    for (id, fault, expected) in &stops {
        let r = client
            .job_until(*id, Duration::from_secs(120), terminal)
            .await;
        assert_eq!(
            r["state"], *expected,
            "the long job {id} of the fault {fault}: {r}"
        );
    }

    // The longest wait of a submit behind 503s, and the longest time no job started, by fault.
    let mut refused: BTreeMap<&str, (Duration, u32, u32, Duration)> = BTreeMap::new();
    for s in &submitted {
        let e = refused.entry(s.phase).or_default();
        e.0 = e.0.max(s.trouble.refused_for);
        e.1 += s.trouble.refused;
        e.2 += s.trouble.unreachable;
        e.3 = e.3.max(s.took);
    }
    started_at.sort();
    let mut gaps: BTreeMap<&str, f64> = BTreeMap::new();
    for w in started_at.windows(2) {
        let gap = (w[1].0 - w[0].0).num_milliseconds() as f64 / 1000.0;
        let g = gaps.entry(w[1].1).or_default();
        *g = g.max(gap);
    }
    println!(
        "cluster faults: {} jobs submitted (a job every {PACE:?}), each fault down for {DOWN_FOR:?}; {} lost with the killed executor",
        submitted.len(),
        lost_with_executor.len()
    );
    for line in &report {
        println!("  {line}");
    }
    for (phase, (longest, n, unreachable, slowest)) in &refused {
        println!(
            "  {phase}: slowest submit {:.2} s; {n} answers 503, longest submit held back by them {:.2} s; {unreachable} tries at an unreachable gateway; longest time no job started {:.2} s",
            slowest.as_secs_f64(),
            longest.as_secs_f64(),
            gaps.get(phase).copied().unwrap_or_default()
        );
    }
    // The loss of one of two gateways costs no refusal: the client goes to the other.
    assert_eq!(
        refused.get("gateway-1").map_or(0, |r| r.1),
        0,
        "{refused:?}"
    );
    // Jobs start again after each fault, well within the election plus the restart.
    for (phase, gap) in &gaps {
        assert!(*gap < 30.0, "no job started for {gap} s during {phase}");
    }

    // The event stream: no job started twice.
    let events = read_stream(&js, "TW_EVENTS").await;
    let mut starts: HashMap<Uuid, u32> = HashMap::new();
    let mut audit_ids = HashSet::new();
    for (subject, body) in &events {
        if subject.starts_with("tw.evt.") {
            let e: Value = serde_json::from_slice(body).unwrap();
            if e["event"] == "started" {
                *starts
                    .entry(e["job_id"].as_str().unwrap().parse().unwrap())
                    .or_default() += 1;
            }
        } else if subject.starts_with("tw.audit.decision") {
            let e: Value = serde_json::from_slice(body).unwrap();
            audit_ids.insert(e["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
    }
    let twice: Vec<_> = starts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "started more than once: {twice:?}");
    // A job lost with its executor may have died between its claim and its `started`
    // event (the record says when it was claimed): once at most, then.
    for s in &submitted {
        let n = starts.get(&s.id).copied();
        if lost_with_executor.contains(&s.id) {
            assert!(n <= Some(1), "lost job {} started {n:?} times", s.id);
        } else {
            assert_eq!(n, Some(1), "job {} ({}) never started", s.id, s.phase);
        }
    }

    // Every audit event is in PostgreSQL, once (the two writers share the database).
    let db = sea_orm::Database::connect(pg.url()).await.unwrap();
    use sea_orm::{ConnectionTrait, Statement};
    let wanted = audit_ids.len();
    taskwire_testkit::eventually(
        &format!("{wanted} audit events in PostgreSQL"),
        Duration::from_secs(60),
        async || audit_ids.is_subset(&stored_audit_ids(&db).await),
    )
    .await;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id::text AS id, count(*) AS n FROM audit_log GROUP BY id HAVING count(*) > 1",
        ))
        .await
        .unwrap();
    assert!(rows.is_empty(), "audit rows stored twice: {}", rows.len());
    let stored = stored_audit_ids(&db).await;
    let missing: Vec<_> = audit_ids.difference(&stored).collect();
    assert!(missing.is_empty(), "audit events not stored: {missing:?}");

    // Every fire of the schedule, once: submitted, or recorded as missed.
    let (status, history, _) = client
        .call(
            Method::GET,
            &format!("/api/v1/schedules/{schedule_id}/history?limit=1000"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    check_fires(&client, &history).await;

    assert!(cluster.stop().success());
}

/// Waits until every executor is in the registry, serving.
async fn wait_for_instances(client: &Client, guids: &[Uuid]) {
    taskwire_testkit::eventually(
        "every executor registered and serving",
        Duration::from_secs(60),
        async || {
            let (_, v, _) = client
                .call(Method::GET, "/api/v1/instances", None, None)
                .await;
            let seen: HashSet<Uuid> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|i| i["status"] == "serving")
                        .filter_map(|i| i["guid"].as_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            guids.iter().all(|g| seen.contains(g))
        },
    )
    .await;
}

/// Every message now in `stream`: subject and payload.
async fn read_stream(js: &async_nats::jetstream::Context, stream: &str) -> Vec<(String, Vec<u8>)> {
    use async_nats::jetstream::consumer::pull;
    let mut s = js.get_stream(stream).await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    let consumer = s
        .create_consumer(pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        let seq = m.info().unwrap().stream_sequence;
        out.push((m.subject.to_string(), m.payload.to_vec()));
        if seq >= last {
            break;
        }
    }
    out
}

async fn stored_audit_ids(db: &sea_orm::DatabaseConnection) -> HashSet<Uuid> {
    use sea_orm::{ConnectionTrait, Statement};
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT id::text AS id FROM audit_log",
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get::<String>("", "id").unwrap().parse().unwrap())
    .collect()
}

/// The fires, oldest first: each second has one, submitted and its job ended succeeded, or a
/// gap ends at a fire recorded as missed that counts it.
async fn check_fires(client: &Client, history: &Value) {
    let fires = history["fires"]
        .as_array()
        .unwrap_or_else(|| panic!("{history}"));
    assert!(fires.len() > 60, "only {} fires", fires.len());
    let mut seen = HashSet::new();
    let mut jobs = HashSet::new();
    let mut last: Option<chrono::DateTime<chrono::Utc>> = None;
    let (mut submitted, mut missed, mut skipped) = (0, 0, 0);
    for f in fires {
        let at: chrono::DateTime<chrono::Utc> = f["fire_at"].as_str().unwrap().parse().unwrap();
        assert!(seen.insert(at), "fire {at} recorded twice: {history}");
        let state = f["state"].as_str().unwrap();
        match state {
            "submitted" => {
                submitted += 1;
                let id: Uuid = f["job_id"].as_str().unwrap().parse().unwrap();
                assert!(jobs.insert(id), "job {id} of two fires");
                let r = client
                    .job_until(id, Duration::from_secs(60), terminal)
                    .await;
                assert_eq!(r["state"], "succeeded", "the job of fire {at}: {r}");
            }
            "missed" => {
                missed += 1;
                println!("  fire {at} recorded as missed: {}", f["reason"]);
            }
            // The previous fire's job started late (an election held it back) and was still
            // running: the schedule's overlap policy skips this one, and records why.
            "skipped"
                if f["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("is still running")) =>
            {
                skipped += 1;
                println!("  fire {at} recorded as skipped: {}", f["reason"]);
            }
            // the pause's last fire may be under way
            "claimed" | "waiting" if Some(f) == fires.last() => {}
            other => panic!("fire {at} ended {other}: {f}"),
        }
        if let Some(prev) = last {
            // whole seconds apart (the first fire's instant may carry more than milliseconds)
            let gap = ((at - prev).num_milliseconds() as f64 / 1000.0).round();
            assert!(
                gap == 1.0 || state == "missed",
                "no fire recorded between {prev} and {at}: {f}"
            );
        }
        last = Some(at);
    }
    println!(
        "  schedule: {submitted} fires submitted, {missed} recorded as missed, {skipped} as skipped, none twice"
    );
}
