//! Stop, kill and cancel through the API: the whole tree and only the tree, who may, and the
//! killed-by line every viewer sees.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// alice's `echo` of `text`, for `channel`, as the gateway would queue it.
fn echo_spec(text: &str, channel: &str) -> taskwire_core::wire::JobSpec {
    use taskwire_core::wire::{JobSpec, Target, Via};
    JobSpec::new("echo", Target::Channel(channel.into()), "alice", Via::Http)
        .with_params([("text".to_string(), json!(text))].into_iter().collect())
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

async fn running(s: &Stack, user: &str, dir: &std::path::Path) -> String {
    let (status, job) = s
        .submit(user, "stubborn", json!({"dir": dir.display().to_string()}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["job_id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(dir.join("escapee").exists() && dir.join("child").exists()) {
        assert!(tokio::time::Instant::now() < deadline, "job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    id
}

/// Waits until the gateway lists instance `guid`: it routes by its copy of the registry.
async fn listed(s: &Stack, guid: uuid::Uuid) {
    taskwire_testkit::eventually(
        "the gateway lists the new instance",
        Duration::from_secs(20),
        async || {
            let (_, listed) = s.get("root", "/api/v1/instances").await;
            listed
                .as_array()
                .is_some_and(|l| l.iter().any(|i| i["guid"] == json!(guid)))
        },
    )
    .await;
}

fn pid_in(dir: &std::path::Path, f: &str) -> i32 {
    std::fs::read_to_string(dir.join(f))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_a_stubborn_tree_and_only_that_tree() {
    let s = Stack::new().await;
    s.ready().await;
    let dir = tempfile::tempdir().unwrap();
    // A canary outside the job, started the same way.
    let mut canary = std::process::Command::new("/bin/sleep")
        .arg("300")
        .spawn()
        .unwrap();
    let id = running(&s, "alice", dir.path()).await;
    // bob may not; carol (kill_any) may, but alice kills her own job.
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
    assert_eq!(reply["signals"], json!(["SIGINT", "SIGTERM", "SIGKILL"]));
    assert_eq!(reply["survivors"], 0);
    for f in ["child", "escapee"] {
        let pid = pid_in(dir.path(), f);
        assert!(!alive(pid), "{f} ({pid}) survived the kill");
    }
    assert!(
        alive(canary.id() as i32),
        "a process outside the job is never touched"
    );
    let _ = canary.kill();
    let _ = canary.wait();

    let job = s.wait_final("alice", &id).await;
    assert_eq!(job["state"], "killed");
    assert_eq!(job["ended_by"], "alice");
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
    let first = log.lines().next().unwrap();
    assert!(first.starts_with("PROCESS KILLED BY alice AT "), "{log}");
    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "jobs.kill" && e.actor.as_deref() == Some("bob") && !e.allowed)
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "jobs.kill" && e.actor.as_deref() == Some("alice") && e.allowed)
    );
    // Killing it again: it already ended.
    let (status, _) = s
        .post("alice", &format!("/api/v1/jobs/{id}/kill"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_killed_by_its_instance_even_with_no_kill_broker() {
    // The gateway asks the instance it saw running the job itself; the broker is for queued
    // jobs and jobs the gateway knows nothing of.
    let mut s = Stack::new().await;
    s.ready().await;
    s.stop_kill_broker().await;
    let dir = tempfile::tempdir().unwrap();
    let id = running(&s, "alice", dir.path()).await;
    let job = s.wait_started(&id).await;
    assert_eq!(job["state"], "running", "{job}");
    let (status, reply) = s
        .post("alice", &format!("/api/v1/jobs/{id}/kill"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["job_id"], id, "{reply}");
    assert_eq!(reply["outcome"], "signalled", "{reply}");
    assert_eq!(reply["state"], "killed", "{reply}");
    assert_eq!(reply["survivors"], 0, "{reply}");
    for f in ["child", "escapee"] {
        let pid = pid_in(dir.path(), f);
        assert!(!alive(pid), "{f} ({pid}) survived the kill");
    }
    let job = s.wait_final("alice", &id).await;
    assert_eq!(job["state"], "killed", "{job}");
    assert_eq!(job["ended_by"], "alice", "{job}");
    let audit = s.audit().await;
    assert!(
        audit.iter().any(|e| e.action == "jobs.kill"
            && e.actor.as_deref() == Some("alice")
            && e.allowed
            && e.target.as_deref() == Some(id.as_str())),
        "the kill's decision is audited: {audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_gives_stopped_and_super_users_may_stop_anything() {
    let s = Stack::new().await;
    s.ready().await;
    let dir = tempfile::tempdir().unwrap();
    let id = running(&s, "alice", dir.path()).await;
    // A live viewer sees the stopped-by line.
    let url = format!(
        "{}/api/v1/jobs/{id}/stream",
        s.base.replace("http://", "ws://")
    );
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("taskwire, bearer.{}", token("carol"))
            .parse()
            .unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let (status, reply) = s
        .post("root", &format!("/api/v1/jobs/{id}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["state"], "stopped");
    assert_eq!(reply["signals"], json!(["SIGTERM", "SIGKILL"]));
    let mut saw_line = false;
    let mut end = Value::Null;
    use base64::Engine;
    use futures::StreamExt;
    while let Some(Ok(m)) = ws.next().await {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "end" {
                end = v;
                break;
            }
            if v["stream"] == "system" {
                let text = base64::engine::general_purpose::STANDARD
                    .decode(v["data"].as_str().unwrap())
                    .unwrap();
                saw_line |= String::from_utf8_lossy(&text).contains("PROCESS STOPPED BY root AT ");
            }
        }
    }
    assert!(saw_line, "the live viewer sees who stopped the job");
    assert_eq!(end["state"], "stopped");
}

/// A job that ignores SIGTERM and is given a grace longer than the NATS client's default
/// request timeout (10 s).
const PATIENT: &str = r#"
[commands.patient]
shell = true
script = 'trap "" TERM; echo started; while true; do sleep 0.05; done'
stop = { signal = "SIGTERM", grace = "11s" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_a_long_grace_is_answered_when_it_ends_not_cut_at_ten_seconds() {
    use taskwire_core::wire::{JobState, KillMode, KillOutcome, KillReply, KillRequest};
    let s = Stack::new().await;
    s.ready().await;
    let mut patient = s.executor("patient", PATIENT, |_| {}).await;
    let guid = patient.guid;
    listed(&s, guid).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, job) = s
            .post(
                "root",
                "/api/v1/jobs",
                json!({"command": "patient", "instance": guid}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        let id = job["job_id"].as_str().unwrap().to_string();
        s.wait_started(&id).await;
        ids.push(id);
    }
    let started = tokio::time::Instant::now();
    // One through the API (the gateway asks the instance itself), one through the kill
    // broker as a client of tw.kill.request: each waits for the instance as long as it
    // documents (60 s, exec_timeout 30 s), not the NATS client's 10 s. Both at once.
    let by_api = async {
        s.post("root", &format!("/api/v1/jobs/{}/stop", ids[0]), json!({}))
            .await
    };
    let by_broker = async {
        let stop = KillRequest {
            job_id: ids[1].parse().unwrap(),
            mode: KillMode::Stop,
            requested_by: "root".into(),
            at: chrono::Utc::now(),
            instance: None,
        };
        let asked = async_nats::Request::new()
            .payload(serde_json::to_vec(&stop).unwrap().into())
            .timeout(Some(Duration::from_secs(60)));
        let answer = s
            .client
            .send_request(s.ns.kill_request(), asked)
            .await
            .unwrap();
        serde_json::from_slice::<KillReply>(&answer.payload).unwrap()
    };
    let ((status, api_reply), reply) = tokio::join!(by_api, by_broker);
    assert_eq!(status, StatusCode::OK, "{api_reply}");
    assert_eq!(api_reply["job_id"], ids[0], "{api_reply}");
    assert_eq!(api_reply["state"], "stopped", "{api_reply}");
    assert_eq!(
        api_reply["signals"],
        json!(["SIGTERM", "SIGKILL"]),
        "{api_reply}"
    );
    assert_eq!(reply.job_id.to_string(), ids[1], "{reply:?}");
    assert_eq!(reply.outcome, KillOutcome::Signalled, "{reply:?}");
    assert_eq!(reply.state, Some(JobState::Stopped), "{reply:?}");
    assert_eq!(reply.signals, vec!["SIGTERM", "SIGKILL"], "{reply:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(11),
        "the grace was waited out: {:?}",
        started.elapsed()
    );
    for id in &ids {
        let job = s.wait_final("root", id).await;
        assert_eq!(job["state"], "stopped", "{job}");
    }
    patient.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_never_starts_even_racing_its_claim() {
    use taskwire_core::wire::{KillMode, KillReply, KillRequest};
    let s = Stack::new().await;
    s.ready().await;
    let (client, store) = s.job_store("race").await;
    let (mut cancelled, mut ran) = (0, 0);
    for i in 0..100u64 {
        let spec = echo_spec(&format!("race {i}"), "default");
        let id = spec.job_id;
        let cancel = KillRequest {
            job_id: id,
            mode: KillMode::Stop,
            requested_by: "alice".into(),
            at: chrono::Utc::now(),
            instance: None,
        };
        // The cancel lands anywhere from before the dispatch to after the claim.
        let delay = Duration::from_micros((i % 20) * 150);
        let (submitted, answer) = tokio::join!(store.submit(spec), async {
            tokio::time::sleep(delay).await;
            client
                .request(
                    s.ns.kill_request(),
                    serde_json::to_vec(&cancel).unwrap().into(),
                )
                .await
        });
        submitted.unwrap();
        let reply: KillReply = serde_json::from_slice(&answer.unwrap().payload).unwrap();
        let job = s.wait_final("alice", &id.to_string()).await;
        if job["state"] == "cancelled" {
            cancelled += 1;
            assert_eq!(reply.outcome, taskwire_core::wire::KillOutcome::Cancelled);
            // Give a wrong start every chance to show.
            tokio::time::sleep(Duration::from_millis(30)).await;
            let job = s.wait_final("alice", &id.to_string()).await;
            assert_eq!(
                job["state"], "cancelled",
                "a cancelled job changed state: {job}"
            );
            assert!(
                job.get("started_at").is_none(),
                "a cancelled job was started: {job}"
            );
            let out = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
            assert!(out.is_empty(), "a cancelled job produced output");
        } else {
            ran += 1;
            assert!(job.get("started_at").is_some(), "{job}");
        }
    }
    assert!(
        cancelled > 0 && ran > 0,
        "both sides won some races: cancelled {cancelled}, ran {ran}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_reaches_only_the_instance_running_the_job() {
    let s = Stack::new().await;
    s.ready().await;
    // A second instance with its own GUID, running the same catalog.
    let mut other = s.executor("other", CATALOG, |_| {}).await;
    let other_guid = other.guid;
    listed(&s, other_guid).await;
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (_, a) = s
        .post("alice", "/api/v1/jobs", json!({"command": "stubborn", "params": {"dir": d1.path().display().to_string()}, "instance": other_guid}))
        .await;
    let a = a["job_id"].as_str().unwrap().to_string();
    let (_, instances) = s.get("root", "/api/v1/instances").await;
    let first_guid = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["guid"].clone())
        .find(|g| *g != json!(other_guid))
        .unwrap();
    let (_, b) = s
        .post("alice", "/api/v1/jobs", json!({"command": "stubborn", "params": {"dir": d2.path().display().to_string()}, "instance": first_guid}))
        .await;
    let b = b["job_id"].as_str().unwrap().to_string();
    let job_b = s.wait_started(&b).await;
    assert_eq!(job_b["instance"], first_guid);
    while !(d1.path().join("escapee").exists() && d2.path().join("child").exists()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, reply) = s
        .post("alice", &format!("/api/v1/jobs/{a}/kill"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["state"], "killed");
    let a_rec = s.wait_final("alice", &a).await;
    assert_eq!(a_rec["instance"], json!(other_guid));
    // The other instance's job is untouched.
    let (_, b_rec) = s.get("alice", &format!("/api/v1/jobs/{b}")).await;
    assert_eq!(b_rec["state"], "running");
    assert!(alive(pid_in(d2.path(), "child")));
    let (status, _) = s
        .post("alice", &format!("/api/v1/jobs/{b}/kill"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    other.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_instance_claims_ends_lost_instead_of_queued_forever() {
    use taskwire_core::wire::{JobSpec, Target};
    let s = Stack::new().await;
    s.ready().await;
    // A broker that gives up on unclaimed jobs after a second.
    let broker = s
        .broker(taskwire_kill_broker::KillBrokerConfig {
            reap_interval: Duration::from_millis(200),
            unclaimed_after: Duration::from_secs(1),
            ..Default::default()
        })
        .await;
    // Queued for a channel no instance serves (the gateway refuses such a submit; an
    // instance that left after the submit leaves the same).
    let (_client, store) = s.job_store("unclaimed-test").await;
    let spec = echo_spec("never", "nowhere");
    let id = spec.job_id.to_string();
    // Beside it, one waiting on the served channel (its dispatch not sent, as if every slot
    // were busy): only waiting for a slot, it stays queued.
    let waiting = JobSpec {
        target: Target::Channel("default".into()),
        ..spec.clone()
    }
    .with_id(uuid::Uuid::now_v7());
    let waiting_id = waiting.job_id.to_string();
    store
        .create(&taskwire_core::wire::JobRecord::queued(waiting))
        .await
        .unwrap();
    store.submit(spec).await.unwrap();
    let (status, job) = s.get("alice", &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "queued");
    let ended = s.wait_final("alice", &id).await;
    assert_eq!(ended["state"], "lost", "{ended}");
    assert!(ended["started_at"].is_null(), "{ended}");
    let why = ended["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("no instance claimed it") && why.contains("channel 'nowhere'"),
        "{ended}"
    );
    // Several sweeps later (every 200 ms), the one on the served channel still waits.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, still) = s.get("alice", &format!("/api/v1/jobs/{waiting_id}")).await;
    assert_eq!(still["state"], "queued", "{still}");
    broker.stop().await;
}
