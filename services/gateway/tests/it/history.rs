//! Jobs that are no longer live are answered from the audit store with the same ACL: record,
//! output byte for byte, history, the audit log, and deletion.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use taskwire_testkit::eventually;

/// What expiry does to a finished job: its live record and its output leave NATS.
async fn expire(s: &Stack, id: &str) {
    s.topo.jobs.purge(id).await.unwrap();
    s.topo
        .output_stream
        .purge()
        .filter(s.ns.output_any(&id.parse().unwrap()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_answered_from_the_audit_store_with_the_same_acl() {
    let s = Stack::with_audit_store().await;
    s.ready().await;
    let job = s.run("alice", "lines", json!({"n": 3})).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    let live_text = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
    let live_nd = s
        .bytes("alice", &format!("/api/v1/jobs/{id}/output?format=ndjson"))
        .await;
    assert!(live_text.ends_with(b"\xffend") || live_text.ends_with(b"done\n"));

    // Wait until the store has the whole job (its exit and every chunk), then let it expire.
    eventually(
        "the job is in the audit store",
        Duration::from_secs(20),
        async || {
            let (st, body) = s.get("alice", &format!("/api/v1/jobs/{id}")).await;
            st == StatusCode::OK && body["output_bytes"].as_u64() == Some(live_text.len() as u64)
        },
    )
    .await;
    let (_, before) = s.get("alice", &format!("/api/v1/jobs/{id}")).await;
    // The stream loses its oldest chunk first: the start comes from the store, the rest from
    // the stream, each chunk once.
    let subject = s.ns.output_any(&id.parse().unwrap());
    let first = s
        .topo
        .output_stream
        .get_first_raw_message_by_subject(&subject, 0)
        .await
        .unwrap();
    s.topo
        .output_stream
        .delete_message(first.sequence)
        .await
        .unwrap();
    assert_eq!(
        s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await,
        live_text,
        "from the store, then the stream"
    );
    assert_eq!(
        s.bytes("alice", &format!("/api/v1/jobs/{id}/output?format=ndjson"))
            .await,
        live_nd
    );
    expire(&s, &id).await;
    assert!(s.topo.jobs.get(&id).await.unwrap().is_none());

    let (st, stored) = s.get("alice", &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(st, StatusCode::OK, "{stored}");
    for k in [
        "state",
        "exit_code",
        "command",
        "requested_by",
        "hostname",
        "argv",
        "pid",
        "peak_rss_bytes",
    ] {
        assert_eq!(stored[k], before[k], "{k}");
    }
    assert_eq!(stored["state"], "succeeded");
    assert!(stored["argv"].as_array().is_some_and(|a| !a.is_empty()));
    let text = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
    assert_eq!(
        text, live_text,
        "stored output is byte for byte the live one"
    );
    let nd = s
        .bytes("alice", &format!("/api/v1/jobs/{id}/output?format=ndjson"))
        .await;
    assert_eq!(nd, live_nd);
    // The output socket replays it from the store too, and ends with the stored state.
    let mut ws = crate::stream::connect(&s, "alice", &id, None, None)
        .await
        .unwrap();
    let (streamed, end) =
        tokio::time::timeout(Duration::from_secs(20), crate::stream::read_all(&mut ws, 1))
            .await
            .expect("the stored output was not replayed to its end");
    assert_eq!(streamed, live_text.to_vec(), "byte for byte");
    assert_eq!(end["state"], "succeeded", "{end}");
    assert_eq!(end["exit_code"], 0, "{end}");

    // Same ACL: bob (read_own) may not read alice's job or its log; carol (read_any) may.
    let (st, body) = s.get("bob", &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let resp = s
        .http
        .get(s.url(&format!("/api/v1/jobs/{id}/output")))
        .bearer_auth(token("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        s.get("carol", &format!("/api/v1/jobs/{id}")).await.0,
        StatusCode::OK
    );

    // History: alice sees her job, bob does not; filters apply.
    let listed = |body: &Value| -> Vec<String> {
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, mine) = s.get("alice", "/api/v1/jobs?command=lines").await;
    assert_eq!(listed(&mine), vec![id.clone()]);
    let (_, other) = s.get("alice", "/api/v1/jobs?command=echo").await;
    assert!(listed(&other).is_empty());
    let (_, bobs) = s.get("bob", "/api/v1/jobs").await;
    assert!(!listed(&bobs).contains(&id));
    let (_, bob_asks) = s.get("bob", "/api/v1/jobs?user=alice").await;
    assert!(listed(&bob_asks).is_empty());
    let (st, bad) = s.get("alice", "/api/v1/jobs?cursor=nonsense").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");

    // The audit log shows bob's denial to carol (read_audit), and is closed to bob.
    eventually(
        "bob's denial in the audit log",
        Duration::from_secs(20),
        async || {
            let (st, body) = s
                .get(
                    "carol",
                    "/api/v1/audit?actor=bob&allowed=false&action=jobs.",
                )
                .await;
            st == StatusCode::OK
                && body["entries"].as_array().is_some_and(|e| {
                    e.iter().any(|a| {
                        a["action"] == "jobs.get"
                            && a["target"] == id.as_str()
                            && a["allowed"] == false
                    })
                })
        },
    )
    .await;
    let (st, body) = s.get("bob", "/api/v1/audit").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");

    // Deleting removes it from the store too, and the deletion is in the audit log.
    let (st, body) = s.delete("bob", &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let (st, body) = s.delete("alice", &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    eventually("gone from the store", Duration::from_secs(20), async || {
        s.get("alice", &format!("/api/v1/jobs/{id}")).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    let (_, after) = s.get("alice", "/api/v1/jobs?command=lines").await;
    assert!(listed(&after).is_empty());
    eventually("deletion audited", Duration::from_secs(20), async || {
        let (_, body) = s
            .get("carol", "/api/v1/audit?action=jobs.delete&allowed=true")
            .await;
        body["entries"].as_array().is_some_and(|e| {
            e.iter()
                .any(|a| a["actor"] == "alice" && a["target"] == id.as_str())
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_audit_writer_history_says_so() {
    let s = Stack::new().await;
    s.ready().await;
    let job = s.run("alice", "echo", json!({"text": "hi"})).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    // Live jobs are still listed from NATS.
    let (st, body) = s.get("alice", "/api/v1/jobs").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["job_id"] == id.as_str())
    );
    let (st, body) = s.get("carol", "/api/v1/audit").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no audit writer is running")
    );
    expire(&s, &id).await;
    let (st, _) = s.get("alice", &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
