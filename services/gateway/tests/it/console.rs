//! The web console's files at `/`, and the live job list it keeps current over the socket.

use crate::helpers::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn console_stack(dir: &std::path::Path) -> Stack {
    let mut cfg = gateway_config();
    cfg.console_dir = Some(dir.to_path_buf());
    Stack::with(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_console_is_served_under_a_strict_policy_and_nothing_beside_it() {
    let outside = tempfile::tempdir().unwrap();
    let dist = outside.path().join("dist");
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><p>console</p>").unwrap();
    std::fs::write(dist.join("assets/app.js"), "console.log(1)").unwrap();
    std::fs::write(dist.join("assets/settings.toml"), "secret = 1").unwrap();
    std::fs::write(outside.path().join("secret.js"), "secret").unwrap();
    let s = console_stack(&dist).await;

    let r = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(r.text().await.unwrap(), "<!doctype html><p>console</p>");

    let r = s.http.get(s.url("/assets/app.js")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.text().await.unwrap(), "console.log(1)");

    // Nothing outside the folder, and no kind of file the console does not ship.
    for path in [
        "/assets/..%2Fsecret.js",
        "/assets/%2E%2E%2Fsecret.js",
        "/assets/.hidden.js",
        "/assets/settings.toml",
        "/assets/missing.js",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_ne!(r.text().await.unwrap(), "secret", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_build_says_how_to_build_it_and_the_api_still_answers() {
    let empty = tempfile::tempdir().unwrap();
    let s = console_stack(empty.path()).await;
    let r = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("npm run build"), "{body}");
    assert!(body.contains("console_dir"), "{body}");
    assert!(body.contains(&empty.path().display().to_string()), "{body}");
    let (status, me) = s.get("alice", "/api/v1/me").await;
    assert_eq!(status, 200, "{me}");
}

async fn open(s: &Stack, user: &str) -> Socket {
    let mut req = format!("{}/api/v1/ws", s.base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("taskwire, bearer.{}", token(user))).unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn watch(ws: &mut Socket) {
    ws.send(Message::Text(
        json!({"op": "watch_jobs"}).to_string().into(),
    ))
    .await
    .unwrap();
}

/// Waits for the server to say the watch is in place.
async fn watching(ws: &mut Socket) {
    let v = next_frame(ws).await.expect("no answer to watch_jobs");
    assert_eq!(v["type"], "watching", "{v}");
}

async fn next_frame(ws: &mut Socket) -> Option<Value> {
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(serde_json::from_str(&t).unwrap()),
        _ => None,
    }
}

/// Reads `job` frames until `job_id` reached a final state; returns (job ids seen, states of
/// `job_id` in order).
async fn until_final(ws: &mut Socket, job_id: &str) -> (Vec<String>, Vec<String>) {
    let (mut seen, mut states) = (Vec::new(), Vec::new());
    loop {
        let v = next_frame(ws)
            .await
            .unwrap_or_else(|| panic!("no final state of {job_id}; saw {states:?}"));
        assert_eq!(v["type"], "job", "{v}");
        let id = v["job"]["job_id"].as_str().unwrap().to_string();
        let state = v["job"]["state"].as_str().unwrap().to_string();
        if id == job_id {
            states.push(state.clone());
        }
        seen.push(id.clone());
        if id == job_id && state == "succeeded" {
            return (seen, states);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_jobs_pushes_every_change_the_caller_may_read_and_nothing_else() {
    let s = Stack::new().await;
    s.ready().await;
    let mut alice = open(&s, "alice").await;
    let mut carol = open(&s, "carol").await;
    let mut dave = open(&s, "dave").await;
    watch(&mut alice).await;
    watch(&mut carol).await;
    watch(&mut dave).await;

    // dave may read no job: refused, and the refusal is in the audit log.
    let v = next_frame(&mut dave).await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["code"], "forbidden", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("read_own"),
        "{v}"
    );

    // Each watch is in place once it says so; every change after that reaches it.
    watching(&mut alice).await;
    watching(&mut carol).await;
    let bobs = s.run("bob", "echo", json!({"text": "from bob"})).await;
    let alices = s.run("alice", "echo", json!({"text": "from alice"})).await;
    let bob_id = bobs["job_id"].as_str().unwrap();
    let alice_id = alices["job_id"].as_str().unwrap();

    let (seen, states) = until_final(&mut alice, alice_id).await;
    assert!(!seen.iter().any(|id| id == bob_id), "alice saw bob's job");
    assert_eq!(
        states.first().map(String::as_str),
        Some("queued"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "running"), "{states:?}");

    let (seen, _) = until_final(&mut carol, alice_id).await;
    assert!(
        seen.iter().any(|id| id == bob_id),
        "carol (read_any) missed bob's job"
    );

    // A deleted job leaves the lists of those who could read it, and only theirs: bob's job
    // is deleted first, so the first removal alice hears of must be her own.
    let (status, body) = s.delete("bob", &format!("/api/v1/jobs/{bob_id}")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.delete("alice", &format!("/api/v1/jobs/{alice_id}")).await;
    assert_eq!(status, 200, "{body}");
    let mut removals = Vec::new();
    for (ws, want) in [(&mut alice, 1), (&mut carol, 2)] {
        let mut heard = Vec::new();
        while heard.len() < want || !heard.iter().any(|id| id == alice_id) {
            let v = next_frame(ws)
                .await
                .unwrap_or_else(|| panic!("no job_removed of {alice_id}; heard {heard:?}"));
            if v["type"] == "job_removed" {
                heard.push(v["job_id"].as_str().unwrap().to_string());
            }
        }
        removals.push(heard);
    }
    assert_eq!(removals[0], [alice_id], "alice heard of bob's deletion");
    removals[1].sort();
    let mut both = [bob_id, alice_id];
    both.sort();
    assert_eq!(removals[1], both, "carol (read_any) hears of both");

    let audit = s.audit().await;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "jobs.watch" && e.actor.as_deref() == Some("dave") && !e.allowed),
        "the refused watch is not audited"
    );
}
