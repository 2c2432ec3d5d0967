//! A NATS outage as a caller of the gateway meets it: a submit waits it out (`[gateway]
//! outage_wait`) and succeeds once NATS is back, or is answered 503 with `Retry-After`; and
//! `/readyz` says the gateway is not ready meanwhile.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use taskwire_gateway::GatewayConfig;

/// Waits until `/readyz` answers `status` (bounded).
async fn readiness(s: &Stack, status: StatusCode) {
    taskwire_testkit::eventually(
        &format!("/readyz answers {status}"),
        Duration::from_secs(30),
        async || {
            s.http
                .get(s.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == status)
        },
    )
    .await;
}

/// A submit sent while NATS is away, on its own task.
fn submit_now(
    s: &Stack,
) -> tokio::task::JoinHandle<(StatusCode, Option<String>, serde_json::Value)> {
    let req = s
        .http
        .post(s.url("/api/v1/jobs"))
        .bearer_auth(token("alice"))
        .json(&json!({"command": "echo", "params": {"text": "after the outage"}}));
    tokio::spawn(async move {
        let r = req.send().await.unwrap();
        let status = r.status();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (status, retry_after, r.json().await.unwrap_or_default())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_during_a_nats_outage_waits_and_succeeds_once_nats_is_back() {
    let mut s = Stack::new().await;
    s.ready().await;
    readiness(&s, StatusCode::OK).await;
    s.nats.kill();
    readiness(&s, StatusCode::SERVICE_UNAVAILABLE).await;
    let submit = submit_now(&s);
    // The outage lasts longer than one JetStream request may wait for its answer (5 s), so a
    // single attempt cannot ride it out: only waiting through it succeeds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!submit.is_finished(), "{:?}", submit.await);
    s.nats.restart();
    let (status, _, body) = submit.await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["job_id"].as_str().unwrap();
    let done = s.wait_final("alice", id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    readiness(&s, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_outage_wait_is_answered_503_with_retry_after() {
    let mut cfg = gateway_config();
    cfg.outage_wait = Duration::from_secs(1);
    let mut s = Stack::with(cfg).await;
    s.ready().await;
    s.nats.kill();
    readiness(&s, StatusCode::SERVICE_UNAVAILABLE).await;
    let (status, retry_after, body) = submit_now(&s).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"), "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    s.nats.restart();
    readiness(&s, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_nats_outage_waits_and_reaches_its_job_once_nats_is_back() {
    // Room after the outage for NATS to start and every service to reconnect on a loaded
    // machine: the stop must not run out of its wait before that.
    let mut s = Stack::with(GatewayConfig {
        outage_wait: Duration::from_secs(40),
        ..gateway_config()
    })
    .await;
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
    let id: uuid::Uuid = job["job_id"].as_str().unwrap().parse().unwrap();
    s.wait_state(&id, taskwire_core::wire::JobState::Running)
        .await;
    s.nats.kill();
    readiness(&s, StatusCode::SERVICE_UNAVAILABLE).await;
    let stop = s
        .http
        .post(s.url(&format!("/api/v1/jobs/{id}/stop")))
        .bearer_auth(token("alice"))
        .json(&json!({}));
    let stop = tokio::spawn(async move {
        let r = stop.send().await.unwrap();
        (
            r.status(),
            r.json::<serde_json::Value>().await.unwrap_or_default(),
        )
    });
    // Longer than one JetStream request waits: only waiting through the outage succeeds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!stop.is_finished(), "{:?}", stop.await);
    s.nats.restart();
    let (status, reply) = stop.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["job_id"], id.to_string(), "{reply}");
    assert_eq!(reply["state"], "stopped", "{reply}");
    let done = s.wait_final("alice", &id.to_string()).await;
    assert_eq!(done["state"], "stopped", "{done}");
    assert_eq!(done["ended_by"], "alice", "{done}");
}
