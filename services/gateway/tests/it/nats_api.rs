//! The NATS request API through a real NATS client: same ACL and audit as HTTP.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;
use taskwire_core::wire::Via;

async fn request(s: &Stack, user: Option<&str>, verb: &str, body: Value) -> Value {
    // A trusted in-house client (the admin identity): direct clients sign in through the auth
    // callout instead (tests/it/direct_nats.rs).
    let client = taskwire_core::nats::connect_to(
        &s.endpoint(&taskwire_core::auth::roles::Role::Admin),
        "script",
    )
    .await
    .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    if let Some(u) = user {
        headers.insert("Authorization", format!("Bearer {}", token(u)).as_str());
    }
    let reply = client
        .request_with_headers(s.ns.api(verb), headers, body.to_string().into())
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_drive_taskwire_over_nats_with_the_same_acl() {
    let s = Stack::new().await;
    s.ready().await;
    let r = request(&s, None, "commands.list", json!({})).await;
    assert_eq!(r["error"]["code"], "unauthorized");

    let r = request(&s, Some("alice"), "commands.list", json!({})).await;
    assert_eq!(r["ok"].as_array().unwrap().len(), 7);

    let r = request(
        &s,
        Some("carol"),
        "jobs.submit",
        json!({"command": "echo", "params": {"text": "x"}}),
    )
    .await;
    assert_eq!(r["error"]["code"], "forbidden");

    let r = request(
        &s,
        Some("alice"),
        "jobs.submit",
        json!({"command": "echo", "params": {"text": "via nats"}}),
    )
    .await;
    let id = r["ok"]["job_id"].as_str().unwrap().to_string();
    assert_eq!(r["ok"]["via"], "nats");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = request(&s, Some("alice"), "jobs.get", json!({"job_id": id})).await;
        if r["ok"]["state"] == "succeeded" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = request(&s, Some("bob"), "jobs.get", json!({"job_id": id})).await;
    assert_eq!(r["error"]["code"], "forbidden");
    let r = request(&s, Some("alice"), "jobs.nope", json!({})).await;
    assert_eq!(r["error"]["code"], "not_found");
    // Listing: alice sees her job; bob (own jobs only) sees none of hers; bad filters are named.
    let r = request(&s, Some("alice"), "jobs.list", json!({"command": "echo"})).await;
    let ids: Vec<&str> = r["ok"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id.as_str()), "{r}");
    let r = request(&s, Some("bob"), "jobs.list", json!({})).await;
    assert!(
        r["ok"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["requested_by"] == "bob"),
        "{r}"
    );
    let r = request(&s, Some("alice"), "jobs.list", json!({"colour": "red"})).await;
    assert_eq!(r["error"]["code"], "invalid_request", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("colour"));
    // The audit log needs read_audit (alice lacks it).
    let r = request(&s, Some("alice"), "audit.list", json!({})).await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");

    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .any(|e| e.via == Via::Nats && e.action == "jobs.submit" && e.allowed)
    );
    assert!(
        audit
            .iter()
            .any(|e| e.via == Via::Nats && e.actor.as_deref() == Some("carol") && !e.allowed)
    );
    assert!(
        audit
            .iter()
            .all(|e| e.via != Via::Nats || e.source == "nats")
    );
}
