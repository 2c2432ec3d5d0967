//! The output WebSocket: replay from any sequence, then live, then the end; many viewers see
//! the same bytes; origins are checked.

use crate::helpers::*;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

pub(crate) async fn connect(
    s: &Stack,
    user: &str,
    job: &str,
    from: Option<u64>,
    origin: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let url = format!(
        "{}/api/v1/jobs/{job}/stream{}",
        s.base.replace("http://", "ws://"),
        from.map(|f| format!("?from_seq={f}")).unwrap_or_default()
    );
    let mut req = url.into_client_request().unwrap();
    // The token travels as a subprotocol, as a browser would send it.
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("taskwire, bearer.{}", token(user))).unwrap(),
    );
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(o).unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Reads frames until the end message; returns (seq-ordered bytes per stream, end message).
pub(crate) async fn read_all(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    first_seq: u64,
) -> (Vec<u8>, Value) {
    let mut bytes = Vec::new();
    let mut expect = first_seq;
    while let Some(m) = ws.next().await {
        match m.unwrap() {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "end" {
                    return (bytes, v);
                }
                assert_eq!(v["seq"].as_u64().unwrap(), expect, "no gap, no duplicate");
                expect += 1;
                bytes.extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(v["data"].as_str().unwrap())
                        .unwrap(),
                );
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    panic!("stream ended without an end message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_viewers_replay_byte_identical_output_then_follow_live() {
    let s = Stack::new().await;
    s.ready().await;
    let (_, job) = s.submit("alice", "lines", json!({"n": 300})).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    let mut early = connect(&s, "alice", &id, None, None).await.unwrap();
    // 20 concurrent viewers, most joining while the job runs.
    let mut viewers = Vec::new();
    for i in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let user = if i % 2 == 0 { "alice" } else { "carol" };
        viewers.push(connect(&s, user, &id, None, None).await.unwrap());
    }
    let (first, end) = read_all(&mut early, 1).await;
    assert_eq!(end["state"], "succeeded");
    assert_eq!(end["exit_code"], 0);
    let stored = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
    assert_eq!(first, stored.to_vec(), "live bytes equal the stored log");
    for mut v in viewers {
        let (b, _) = read_all(&mut v, 1).await;
        assert_eq!(b, first, "every viewer gets identical bytes");
    }
    // A viewer joining after the end replays everything, or resumes from a sequence.
    let mut late = connect(&s, "root", &id, None, None).await.unwrap();
    assert_eq!(read_all(&mut late, 1).await.0, first);
    let mut resumed = connect(&s, "alice", &id, Some(3), None).await.unwrap();
    let (tail, end) = read_all(&mut resumed, 3).await;
    assert!(first.ends_with(&tail) && tail.len() < first.len());
    assert!(end["last_seq"].as_u64().unwrap() >= 3);
    let _ = early.close(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_check_origin_and_permission() {
    let s = Stack::new().await;
    s.ready().await;
    let job = s.run("alice", "echo", json!({"text": "x"})).await;
    let id = job["job_id"].as_str().unwrap();
    let same = s.base.clone();
    assert!(connect(&s, "alice", id, None, Some(&same)).await.is_ok());
    for bad in ["http://evil.example", "null"] {
        match connect(&s, "alice", id, None, Some(bad)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 403, "{bad}")
            }
            other => panic!("{bad}: expected 403, got {other:?}"),
        }
    }
    match connect(&s, "bob", id, None, None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("bob: expected 403, got {other:?}"),
    }
    let mut ws = connect(&s, "alice", id, None, None).await.unwrap();
    let _ = ws.send(Message::Close(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_viewers_get_identical_bytes_while_a_slow_one_is_cut_off() {
    let mut cfg = gateway_config();
    cfg.viewer_lag_chunks = 16;
    cfg.viewer_send_timeout = std::time::Duration::from_secs(5);
    cfg.socket_send_buffer = 16 * 1024;
    let s = Stack::with(cfg).await;
    s.ready().await;
    // After 1 s, 64 chunks of 16 KiB of random bytes, one every 50 ms.
    let (_, job) = s.submit("alice", "drip", json!({})).await;
    let id = job["job_id"].as_str().unwrap().to_string();

    // The slow viewer: a tiny receive buffer, and it reads one frame every 300 ms.
    let slow = {
        let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let tcp = sock.connect(addr).await.unwrap();
        let mut req = format!(
            "{}/api/v1/jobs/{id}/stream",
            s.base.replace("http://", "ws://")
        )
        .into_client_request()
        .unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&format!("taskwire, bearer.{}", token("alice"))).unwrap(),
        );
        tokio_tungstenite::client_async(req, tcp).await.unwrap().0
    };
    let slow_task = tokio::spawn(async move {
        let mut slow = slow;
        let mut chunks = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            match slow.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_ne!(v["type"], "end", "the slow viewer must not get to the end");
                    chunks += 1;
                }
                Some(Ok(Message::Close(Some(f)))) => {
                    return (chunks, Some((u16::from(f.code), f.reason.to_string())));
                }
                Some(Ok(Message::Close(None))) | Some(Err(_)) | None => return (chunks, None),
                Some(Ok(_)) => {}
            }
        }
    });

    let mut viewers = Vec::new();
    for _ in 0..100 {
        viewers.push(connect(&s, "alice", &id, None, None).await.unwrap());
    }
    let readers: Vec<_> = viewers
        .into_iter()
        .map(|mut v| tokio::spawn(async move { read_all(&mut v, 1).await }))
        .collect();
    let mut all = Vec::new();
    for r in readers {
        let (bytes, end) = r.await.unwrap();
        assert_eq!(end["state"], "succeeded");
        all.push(bytes);
    }
    let stored = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
    assert_eq!(stored.len(), 64 * 16384);
    for b in &all {
        assert!(
            *b == stored.to_vec(),
            "every viewer got the stored bytes exactly"
        );
    }
    let (got, close) = tokio::time::timeout(std::time::Duration::from_secs(60), slow_task)
        .await
        .expect("the slow viewer is disconnected in bounded time")
        .unwrap();
    assert!(
        got < 64,
        "the slow viewer was cut off before the end ({got} chunks)"
    );
    let (code, reason) = close.expect("closed with a close frame");
    assert_eq!(code, 4008);
    assert!(reason.contains("from_seq="), "{reason}");
}

/// Parses an SSE body into (event, id, data) triples.
fn sse_events(body: &str) -> Vec<(String, Option<String>, String)> {
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let (mut ev, mut id, mut data) = (String::new(), None, String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                ev = v.to_string();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        if !ev.is_empty() {
            out.push((ev, id, data));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_carry_the_same_stream_and_resume_by_last_event_id() {
    let s = Stack::new().await;
    s.ready().await;
    let job = s.run("alice", "lines", json!({"n": 20})).await;
    let id = job["job_id"].as_str().unwrap();
    let sse = |last: Option<&str>| {
        let mut r = s
            .http
            .get(s.url(&format!("/api/v1/jobs/{id}/stream")))
            .bearer_auth(token("alice"))
            .header("accept", "text/event-stream");
        if let Some(l) = last {
            r = r.header("last-event-id", l);
        }
        r.send()
    };
    let r = sse(None).await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = sse_events(&r.text().await.unwrap());
    let (last, chunks) = events.split_last().unwrap();
    assert_eq!(last.0, "end");
    let end: Value = serde_json::from_str(&last.2).unwrap();
    assert_eq!(end["state"], "succeeded");
    let mut bytes = Vec::new();
    for (i, (ev, eid, data)) in chunks.iter().enumerate() {
        assert_eq!(ev, "chunk");
        assert_eq!(eid.as_deref(), Some((i + 1).to_string().as_str()));
        let v: Value = serde_json::from_str(data).unwrap();
        bytes.extend(
            base64::engine::general_purpose::STANDARD
                .decode(v["data"].as_str().unwrap())
                .unwrap(),
        );
    }
    let stored = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
    assert_eq!(bytes, stored.to_vec());
    let resumed = sse_events(&sse(Some("2")).await.unwrap().text().await.unwrap());
    assert_eq!(
        resumed[0].1.as_deref(),
        Some("3"),
        "Last-Event-ID 2 resumes at 3"
    );
    // Neither a WebSocket nor an event stream: a clear error.
    let r = s
        .http
        .get(s.url(&format!("/api/v1/jobs/{id}/stream")))
        .bearer_auth(token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_socket_submits_follows_several_jobs_and_kills() {
    let s = Stack::new().await;
    s.ready().await;
    let url = format!("{}/api/v1/ws", s.base.replace("http://", "ws://"));
    let open = |user: &'static str| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&format!("taskwire, bearer.{}", token(user))).unwrap(),
        );
        tokio_tungstenite::connect_async(req)
    };
    let (mut ws, _) = open("alice").await.unwrap();
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(
        json!({"op": "submit", "ref": "a", "job": {"command": "lines", "params": {"n": 5}}}),
    ))
    .await
    .unwrap();
    ws.send(send(
        json!({"op": "submit", "ref": "b", "job": {"command": "echo", "params": {"text": "bee"}}}),
    ))
    .await
    .unwrap();
    ws.send(send(
        json!({"op": "submit", "ref": "c", "job": {"command": "secret"}}),
    ))
    .await
    .unwrap();
    let mut ids = std::collections::BTreeMap::new();
    let mut outputs: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut ended = std::collections::BTreeSet::new();
    let mut denied = false;
    while ended.len() < 2 || !denied {
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!("socket ended")
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        match v["type"].as_str().unwrap() {
            "submitted" => {
                let id = v["job"]["job_id"].as_str().unwrap().to_string();
                ids.insert(v["ref"].as_str().unwrap().to_string(), id.clone());
                ws.send(send(json!({"op": "subscribe", "job_id": id})))
                    .await
                    .unwrap();
            }
            "chunk" => outputs
                .entry(v["job_id"].as_str().unwrap().to_string())
                .or_default()
                .extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(v["data"].as_str().unwrap())
                        .unwrap(),
                ),
            "end" => {
                assert_eq!(v["state"], "succeeded");
                ended.insert(v["job_id"].as_str().unwrap().to_string());
            }
            "error" => {
                assert_eq!(v["ref"], "c");
                assert_eq!(v["error"]["code"], "forbidden");
                denied = true;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    for (r, id) in &ids {
        let stored = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
        assert_eq!(outputs[id], stored.to_vec(), "job {r}");
    }
    assert_eq!(outputs[&ids["b"]], b"bee\n");

    // bob cannot follow alice's job, on the same kind of socket.
    let (mut bob, _) = open("bob").await.unwrap();
    bob.send(send(json!({"op": "subscribe", "job_id": ids["a"]})))
        .await
        .unwrap();
    let Some(Ok(Message::Text(t))) = bob.next().await else {
        panic!()
    };
    let v: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["error"]["code"], "forbidden");

    // Kill through the socket.
    let dir = tempfile::tempdir().unwrap();
    ws.send(send(json!({"op": "submit", "ref": "k", "job": {"command": "stubborn", "params": {"dir": dir.path().display().to_string()}}}))).await.unwrap();
    let id = loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!()
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "submitted" {
            break v["job"]["job_id"].as_str().unwrap().to_string();
        }
    };
    while !dir.path().join("escapee").exists() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    ws.send(send(json!({"op": "kill", "ref": "kk", "job_id": id})))
        .await
        .unwrap();
    let reply = loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!()
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "control" {
            break v;
        }
    };
    assert_eq!(reply["ref"], "kk");
    assert_eq!(reply["reply"]["state"], "killed");
}
