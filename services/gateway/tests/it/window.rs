//! A feed keeps only a small window of recent output in memory: viewers further back (late,
//! or resuming from an early sequence) read the stream itself and still get every byte once,
//! in order, with binary or JSON frames.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::{Value, json};
use taskwire_core::wire::api::binary;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A viewer of `job` from `from`, offering `protocols`; returns the socket and the
/// subprotocol the gateway chose.
async fn open(s: &Stack, job: &str, from: u64, protocols: &str) -> (Ws, String) {
    let url = format!(
        "{}/api/v1/jobs/{job}/stream?from_seq={from}",
        s.base.replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("{protocols}, bearer.{}", token("alice"))).unwrap(),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (ws, chosen)
}

/// Every chunk from `first` to the end, checking order; (bytes, end frame, binary frames seen).
async fn read(ws: &mut Ws, job: &str, first: u64) -> (Vec<u8>, Value, usize) {
    read_telling(ws, job, first, None).await
}

/// [`read`], saying on `got` how many chunks arrived so far.
async fn read_telling(
    ws: &mut Ws,
    job: &str,
    first: u64,
    got: Option<tokio::sync::watch::Sender<u64>>,
) -> (Vec<u8>, Value, usize) {
    let (mut bytes, mut expect, mut binaries) = (Vec::new(), first, 0);
    while let Some(m) = ws.next().await {
        if let Some(g) = &got {
            g.send_replace(expect - first);
        }
        match m.unwrap() {
            Message::Binary(b) => {
                let c = binary::decode_chunk(&b).unwrap();
                assert_eq!(c.job_id.to_string(), job);
                assert_eq!(c.seq, expect, "no gap, no duplicate");
                expect += 1;
                binaries += 1;
                bytes.extend_from_slice(&c.data);
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "end" {
                    assert_eq!(v["last_seq"].as_u64().unwrap(), expect - 1);
                    return (bytes, v, binaries);
                }
                assert_eq!(v["seq"].as_u64().unwrap(), expect, "no gap, no duplicate");
                expect += 1;
                use base64::Engine;
                bytes.extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(v["data"].as_str().unwrap())
                        .unwrap(),
                );
            }
            Message::Close(f) => panic!("closed before the end: {f:?}"),
            _ => {}
        }
    }
    panic!("stream ended without an end frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_behind_a_small_window_read_the_stream_and_miss_nothing() {
    let mut cfg = gateway_config();
    // One chunk's worth: almost every chunk falls out of memory at once.
    cfg.feed_window = taskwire_core::wire::output::MAX_CHUNK as u64;
    let s = Stack::with(cfg).await;
    s.ready().await;
    // After 1 s, 64 chunks of 16 KiB of random bytes, one every 50 ms (1 MiB).
    let (_, job) = s.submit("alice", "drip", json!({})).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    let (mut live, chosen) = open(&s, &id, 1, "taskwire.binary, taskwire").await;
    assert_eq!(chosen, "taskwire.binary", "binary frames when offered");
    let (mut json_live, chosen) = open(&s, &id, 1, "taskwire").await;
    assert_eq!(chosen, "taskwire", "JSON frames for who asks for them only");
    let (got, mut seen) = tokio::sync::watch::channel(0);
    let job_id = id.clone();
    let live = tokio::spawn(async move { read_telling(&mut live, &job_id, 1, Some(got)).await });
    let job_id = id.clone();
    let json_live = tokio::spawn(async move { read(&mut json_live, &job_id, 1).await });
    // Join from the start once the live viewer has 8 chunks: chunk 1 is out of the window.
    seen.wait_for(|n| *n >= 8).await.unwrap();
    let (mut late, _) = open(&s, &id, 1, "taskwire.binary").await;
    let (late_bytes, end, late_binaries) = read(&mut late, &id, 1).await;
    assert_eq!(end["state"], "succeeded");
    let (live_bytes, _, live_binaries) = live.await.unwrap();
    let (json_bytes, _, json_binaries) = json_live.await.unwrap();
    let stored = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
    assert_eq!(stored.len(), 64 * 16384);
    assert!(
        live_bytes == stored.to_vec(),
        "the live viewer got every byte"
    );
    assert!(
        late_bytes == stored.to_vec(),
        "the late viewer got every byte"
    );
    assert!(
        json_bytes == stored.to_vec(),
        "the JSON viewer got every byte"
    );
    assert!(live_binaries > 0 && late_binaries > 0 && json_binaries == 0);
    // After the end, from the start and from the middle.
    let (mut again, _) = open(&s, &id, 1, "taskwire.binary").await;
    assert!(read(&mut again, &id, 1).await.0 == stored.to_vec());
    let (mut middle, _) = open(&s, &id, 10, "taskwire").await;
    let (tail, _, _) = read(&mut middle, &id, 10).await;
    assert!(stored.ends_with(&tail) && !tail.is_empty() && tail.len() < stored.len());
}

/// A log that compresses crosses NATS as LZ4 blocks: the live viewer, a viewer behind the
/// window (reading the stream), a JSON viewer and the download all get the bytes as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_log_reaches_every_kind_of_reader_as_written() {
    let mut cfg = gateway_config();
    cfg.feed_window = taskwire_core::wire::output::MAX_CHUNK as u64;
    let s = Stack::with(cfg).await;
    s.ready().await;
    // After 1 s, 48 bursts of 3,000 numbers (about 20 KiB of text each), every 50 ms.
    let expected: Vec<u8> = (1..=48 * 3000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let (_, job) = s.submit("alice", "logdrip", json!({})).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    let (mut live, _) = open(&s, &id, 1, "taskwire.binary").await;
    let (mut json_live, _) = open(&s, &id, 1, "taskwire").await;
    let (got, mut seen) = tokio::sync::watch::channel(0);
    let job_id = id.clone();
    let live = tokio::spawn(async move { read_telling(&mut live, &job_id, 1, Some(got)).await });
    let job_id = id.clone();
    let json_live = tokio::spawn(async move { read(&mut json_live, &job_id, 1).await });
    seen.wait_for(|n| *n >= 8).await.unwrap();
    let (mut late, _) = open(&s, &id, 1, "taskwire.binary").await;
    let (late_bytes, end, _) = read(&mut late, &id, 1).await;
    assert_eq!(end["state"], "succeeded");
    let (live_bytes, _, _) = live.await.unwrap();
    let (json_bytes, _, _) = json_live.await.unwrap();
    let stored = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
    assert!(
        stored.to_vec() == expected,
        "the download is the log as written"
    );
    assert!(
        live_bytes == expected,
        "the live viewer got the log as written"
    );
    assert!(
        late_bytes == expected,
        "the late viewer got the log as written"
    );
    assert!(
        json_bytes == expected,
        "the JSON viewer got the log as written"
    );
    let wire = s.wire_chunks(&id.parse().unwrap()).await;
    let packed = wire
        .iter()
        .filter(|c| c.encoding == taskwire_core::wire::output::ChunkEncoding::Lz4)
        .count();
    let sent: usize = wire.iter().map(|c| c.payload.len()).sum();
    assert!(
        packed > 0 && sent < expected.len() * 3 / 4,
        "{packed} of {} chunks compressed, {sent} bytes for {}",
        wire.len(),
        expected.len()
    );
}

/// Viewers that stop reading while a job writes far faster than they read are not cut off:
/// the feed waits for its fastest viewer (it holds at most an eighth of a window no viewer has
/// read), so neither a job's own stream nor a subscription on the multiplexed socket falls
/// `viewer_lag_chunks` behind, however much the job writes meanwhile; both get every byte.
/// (One job per kind of viewer: a socket's queue lets its subscription run ahead of a job's
/// own stream, and the feed goes at the pace of the fastest.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_that_pause_while_a_job_races_ahead_are_waited_for_not_cut() {
    let mut cfg = gateway_config();
    // 16 chunks of memory, a lag limit of 40 chunks; each job writes about 370 chunks.
    cfg.feed_window = 16 * taskwire_core::wire::output::MAX_CHUNK as u64;
    cfg.viewer_lag_chunks = 40;
    // The viewers pause for the whole job: no frame may count as stuck meanwhile.
    cfg.viewer_send_timeout = std::time::Duration::from_secs(120);
    let s = Stack::with(cfg).await;
    s.ready().await;
    // "start", 1 s of nothing, then 24 MB of random bytes as fast as the pipe goes.
    let (_, job) = s.submit("alice", "burst", json!({})).await;
    let own_id = job["job_id"].as_str().unwrap().to_string();
    let (_, job) = s.submit("alice", "burst", json!({})).await;
    let sub_id = job["job_id"].as_str().unwrap().to_string();
    let (mut own, _) = open(&s, &own_id, 1, "taskwire.binary").await;
    let mut session = {
        let url = format!("{}/api/v1/ws", s.base.replace("http://", "ws://"));
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&format!("taskwire.binary, bearer.{}", token("alice"))).unwrap(),
        );
        tokio_tungstenite::connect_async(req).await.unwrap().0
    };
    let op = json!({"op": "subscribe", "job_id": sub_id}).to_string();
    futures::SinkExt::send(&mut session, Message::Text(op.into()))
        .await
        .unwrap();
    // Both have their job's first chunk (so both waited at the live edge), then read nothing
    // until the jobs have ended.
    let first = |m: Message| match m {
        Message::Binary(b) => binary::decode_chunk(&b).unwrap(),
        other => panic!("expected the first chunk, got {other:?}"),
    };
    let c = first(own.next().await.unwrap().unwrap());
    assert_eq!((c.seq, &c.data[..]), (1, &b"start\n"[..]));
    let c = first(session.next().await.unwrap().unwrap());
    assert_eq!((c.job_id.to_string(), c.seq), (sub_id.clone(), 1));
    assert_eq!(&c.data[..], b"start\n");
    for id in [&own_id, &sub_id] {
        let job_id: uuid::Uuid = id.parse().unwrap();
        s.wait_record(&job_id, "ended", std::time::Duration::from_secs(60), |r| {
            r.state.is_terminal()
        })
        .await;
    }
    let (own_bytes, end, _) = read(&mut own, &own_id, 2).await;
    assert_eq!(end["state"], "succeeded");
    // The session's frames: chunks of the job, then its end (a `slow` frame fails here).
    let (mut sub_bytes, mut expect) = (Vec::new(), 2);
    loop {
        match session.next().await.unwrap().unwrap() {
            Message::Binary(b) => {
                let c = binary::decode_chunk(&b).unwrap();
                assert_eq!(c.seq, expect, "no gap, no duplicate");
                expect += 1;
                sub_bytes.extend_from_slice(&c.data);
            }
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["type"], "end", "the subscription ends with the job: {v}");
                assert_eq!(v["state"], "succeeded");
                assert_eq!(v["last_seq"].as_u64().unwrap(), expect - 1);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for (id, got) in [(&own_id, &own_bytes), (&sub_id, &sub_bytes)] {
        let stored = s.bytes("alice", &format!("/api/v1/jobs/{id}/output")).await;
        assert_eq!(stored.len(), 6 + 24_000_000);
        assert!(*got == stored[6..], "job {id}: the viewer got every byte");
    }
    assert!(
        expect > 40 + 16 + 2,
        "the job wrote more chunks than the window and the lag limit together ({expect})"
    );
}
