//! `GET /api/v1/ws`: one multiplexed WebSocket for the console. On it a client can submit
//! jobs, follow the output of several jobs at once, and stop or kill them, each operation
//! going through exactly the same authentication, ACL and audit as its REST twin.
//!
//! Client to server (JSON text frames):
//! `{"op":"submit","ref":"r1","job":{...POST /jobs body...}}`,
//! `{"op":"subscribe","job_id":"...","from_seq":1}`, `{"op":"unsubscribe","job_id":"..."}`,
//! `{"op":"stop","ref":"r2","job_id":"..."}`, `{"op":"kill","ref":"r3","job_id":"..."}`,
//! `{"op":"watch_jobs"}` (every later change of a job the caller may read, as it happens).
//!
//! Server to client: `{"type":"submitted","ref":..,"job":..}`, chunk frames
//! `{"type":"chunk","job_id":..,"seq":..,"stream":..,"data":"<base64>"}`,
//! `{"type":"end","job_id":..,"state":..}`, `{"type":"control","ref":..,"reply":..}`,
//! `{"type":"watching"}`, then `{"type":"job","job":<live record>}` and
//! `{"type":"job_removed","job_id":..}` after `watch_jobs`,
//! `{"type":"slow","job_id":..,"from_seq":N}` (that subscription was dropped for falling
//! behind; subscribe again from N), and `{"type":"error","ref"|"job_id"|"op":..,"error":{code,message}}`.

use crate::error::{ApiError, ErrorCode};
use crate::feed::Feed;
use crate::state::{AppState, Caller};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use taskwire_core::wire::KillMode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Largest client frame (a submit body is at most this).
const MAX_INBOUND: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    Submit {
        #[serde(rename = "ref")]
        reference: Option<String>,
        job: Value,
    },
    Subscribe {
        job_id: String,
        from_seq: Option<u64>,
    },
    Unsubscribe {
        job_id: String,
    },
    Stop {
        #[serde(rename = "ref")]
        reference: Option<String>,
        job_id: String,
    },
    Kill {
        #[serde(rename = "ref")]
        reference: Option<String>,
        job_id: String,
    },
    WatchJobs {},
    UnwatchJobs {},
}

pub async fn upgrade(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let caller = Caller {
        source: addr.to_string(),
        ip: Some(addr.ip()),
        via: taskwire_core::wire::Via::Websocket,
    };
    if let Err(reason) = super::stream::check_origin(&headers, &st.cfg.allowed_origins) {
        st.audit(None, "ws.connect", None, false, &reason, &caller)
            .await?;
        return Err(ApiError::new(ErrorCode::Forbidden, reason));
    }
    let who = st.authenticate(&headers, &caller, "ws.connect").await?;
    st.audit(
        Some(&who.user),
        "ws.connect",
        None,
        true,
        "authenticated",
        &caller,
    )
    .await?;
    Ok(ws
        .protocols([crate::auth::WS_PROTOCOL])
        .max_message_size(MAX_INBOUND)
        .max_frame_size(MAX_INBOUND)
        .on_upgrade(move |socket| session(st, socket, headers, caller)))
}

fn error_frame(key: &str, id: &str, e: &ApiError) -> Message {
    Message::Text(Utf8Bytes::from(
        json!({"type": "error", key: id, "error": {"code": e.code, "message": e.message}})
            .to_string(),
    ))
}

async fn session(st: AppState, socket: WebSocket, headers: HeaderMap, caller: Caller) {
    let (mut sink, mut stream) = socket.split();
    // One writer; subscriptions and answers queue here (bounded: a subscription that cannot
    // queue is dropped as slow, see `follow`).
    let (tx, mut rx) = mpsc::channel::<Message>(256);
    let send_timeout = st.cfg.viewer_send_timeout;
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            match tokio::time::timeout(send_timeout, sink.send(m)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    });
    let mut subs: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut watch: Option<JoinHandle<()>> = None;
    let mut recheck =
        super::recheck::Recheck::new(st.clone(), headers.clone(), caller.clone(), "ws.session");
    loop {
        let msg = tokio::select! {
            m = stream.next() => match m {
                Some(Ok(m)) => m,
                _ => break,
            },
            frames = recheck.failed() => {
                for f in frames {
                    let _ = tx.send(f).await;
                }
                break;
            }
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let op: Op = match serde_json::from_str(text.as_str()) {
            Ok(op) => op,
            Err(e) => {
                let err = ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("unreadable operation: {e}"),
                );
                let _ = st
                    .audit_malformed(None, "ws.op", &err.message, &caller)
                    .await;
                let _ = tx.send(error_frame("ref", "", &err)).await;
                continue;
            }
        };
        match op {
            Op::Submit { reference, job } => {
                let r = reference.unwrap_or_default();
                let body = job.to_string();
                let out =
                    match super::jobs::submit_as(&st, &headers, &caller, body.as_bytes()).await {
                        Ok(v) => Message::Text(Utf8Bytes::from(
                            json!({"type": "submitted", "ref": r, "job": v}).to_string(),
                        )),
                        Err(e) => error_frame("ref", &r, &e),
                    };
                let _ = tx.send(out).await;
            }
            Op::Stop { reference, job_id } => {
                control(
                    &st,
                    &headers,
                    &caller,
                    &tx,
                    reference,
                    &job_id,
                    KillMode::Stop,
                )
                .await;
            }
            Op::Kill { reference, job_id } => {
                control(
                    &st,
                    &headers,
                    &caller,
                    &tx,
                    reference,
                    &job_id,
                    KillMode::Kill,
                )
                .await;
            }
            Op::Subscribe { job_id, from_seq } => {
                match super::jobs::load_job(&st, &headers, &caller, "jobs.stream", &job_id).await {
                    Ok(record) => {
                        let feed = st.feeds.get(&record, &st);
                        if let Some(old) = subs.remove(&job_id) {
                            old.abort();
                        }
                        let from = from_seq.unwrap_or(1).max(1);
                        let task =
                            tokio::spawn(follow(feed, from, st.cfg.viewer_lag_chunks, tx.clone()));
                        subs.insert(job_id, task);
                    }
                    Err(e) => {
                        let _ = tx.send(error_frame("job_id", &job_id, &e)).await;
                    }
                }
            }
            Op::Unsubscribe { job_id } => {
                if let Some(t) = subs.remove(&job_id) {
                    t.abort();
                }
            }
            Op::WatchJobs {} => match super::watch::start(&st, &headers, &caller, tx.clone()).await
            {
                Ok(task) => {
                    if let Some(old) = watch.replace(task) {
                        old.abort();
                    }
                }
                Err(e) => {
                    let _ = tx.send(error_frame("op", "watch_jobs", &e)).await;
                }
            },
            Op::UnwatchJobs {} => {
                if let Some(t) = watch.take() {
                    t.abort();
                }
            }
        }
    }
    drop(recheck); // no check (nor its audit) after the session ended
    for (_, t) in subs {
        t.abort();
    }
    if let Some(t) = watch {
        t.abort();
    }
    drop(tx);
    let _ = writer.await;
}

async fn control(
    st: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    tx: &mpsc::Sender<Message>,
    reference: Option<String>,
    job_id: &str,
    mode: KillMode,
) {
    let r = reference.unwrap_or_default();
    let out = match super::control::end_as(st, headers, caller, job_id, mode).await {
        Ok(reply) => Message::Text(Utf8Bytes::from(
            json!({"type": "control", "ref": r, "reply": reply}).to_string(),
        )),
        Err(e) => error_frame("ref", &r, &e),
    };
    let _ = tx.send(out).await;
}

/// Feeds one job's chunks into the session's writer, then its end.
async fn follow(feed: Arc<Feed>, from_seq: u64, lag: usize, tx: mpsc::Sender<Message>) {
    let job_id = feed.job_id;
    let mut progress = feed.subscribe();
    let mut next = (from_seq - 1) as usize;
    let mut live = false;
    loop {
        let p = progress.borrow_and_update().clone();
        if next >= p.chunks {
            live = true;
        }
        while next < progress.borrow().chunks {
            for c in feed.chunks_from(next, 64) {
                let behind = progress.borrow().chunks.saturating_sub(next);
                if live && (behind > lag || tx.capacity() == 0) {
                    let slow = json!({"type": "slow", "job_id": job_id, "from_seq": next + 1});
                    let _ = tx
                        .send(Message::Text(Utf8Bytes::from(slow.to_string())))
                        .await;
                    return;
                }
                if tx.send(Message::Text(c.frame.clone())).await.is_err() {
                    return;
                }
                next += 1;
            }
        }
        if let Some(done) = &p.done
            && next as u64 >= done.last_seq
        {
            let mut end = serde_json::to_value(done).unwrap_or_default();
            end["type"] = "end".into();
            end["job_id"] = json!(job_id);
            let _ = tx
                .send(Message::Text(Utf8Bytes::from(end.to_string())))
                .await;
            return;
        }
        if progress.changed().await.is_err() {
            return;
        }
    }
}
