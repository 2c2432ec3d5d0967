//! `GET /api/v1/ws`: one multiplexed WebSocket (the console's). On it a client submits jobs,
//! follows the output of several jobs at once, stops or kills them, and watches the job list;
//! each operation goes through exactly the same authentication, ACL and audit as its REST
//! twin. Client frames are `wire::api::SocketOp`s, server frames `wire::api::Frame`s (see
//! `docs/protocol.md`, section 10).

use super::cursor::{Cursor, Step};
use super::origin;
use super::recheck::Recheck;
use crate::auth::Credentials;
use crate::call::Call;
use crate::error::{ApiError, ErrorCode};
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Principal};
use crate::ops;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use taskwire_core::wire::api::binary::WS_BINARY_PROTOCOL;
use taskwire_core::wire::api::frames::WS_PROTOCOL;
use taskwire_core::wire::api::jobs::SUBMIT_EXAMPLE;
use taskwire_core::wire::api::{Frame, SocketOp, SubmitRequest};
use taskwire_core::wire::{KillMode, Via};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Largest client frame (a submit body is at most this).
const MAX_INBOUND: usize = 256 * 1024;
/// Frames queued for the socket's one writer; a subscription that finds it full waits (and
/// falls behind the feed, see `follow`). A queued chunk from the feed's window is shared; one
/// read from the stream for a subscription behind the window is its own (at most this many
/// chunks).
const OUT_QUEUE: usize = 64;

pub async fn upgrade(
    mut call: Call,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let action = Action::WsConnect;
    call.caller.via = Via::Websocket;
    if let Err(reason) = origin::check(&call.headers, &call.gw.cfg.allowed_origins) {
        call.gw
            .audit(None, action, None, false, &reason, &call.caller)
            .await?;
        return Err(ApiError::new(ErrorCode::Forbidden, reason));
    }
    let who = call.who(action).await?;
    let Ok(ws) = ws else {
        let e = ApiError::invalid(
            "this endpoint is a WebSocket: open it with a WebSocket client (subprotocol taskwire)",
        );
        return Err(call.malformed(&who, action, e).await);
    };
    call.gw
        .audit(
            Some(&who.user),
            action,
            None,
            true,
            "authenticated",
            &call.caller,
        )
        .await?;
    let Call {
        gw,
        caller,
        credentials,
        ..
    } = call;
    let ws = ws.protocols([WS_BINARY_PROTOCOL, WS_PROTOCOL]);
    let binary = super::viewer::is_binary(&ws);
    Ok(ws
        .max_message_size(MAX_INBOUND)
        .max_frame_size(MAX_INBOUND)
        .on_upgrade(move |socket| session(gw, socket, who, credentials, caller, binary)))
}

/// One open socket: who opened it, what it follows, and where its frames go.
struct Session {
    gw: Arc<Gateway>,
    /// Authenticated again for every operation, as its REST twin would be.
    creds: Credentials,
    /// Who opened it (unreadable frames are audited as theirs).
    opener: Principal,
    caller: Caller,
    /// Chunks go out as binary frames (`taskwire.binary`).
    binary: bool,
    tx: mpsc::Sender<Message>,
    subs: HashMap<String, JoinHandle<()>>,
    watch: Option<JoinHandle<()>>,
}

async fn session(
    gw: Arc<Gateway>,
    socket: WebSocket,
    who: Principal,
    creds: Credentials,
    caller: Caller,
    binary: bool,
) {
    let (mut sink, mut stream) = socket.split();
    // One writer; subscriptions and answers queue here (bounded: a subscription that cannot
    // queue waits, see `follow`).
    let (tx, mut rx) = mpsc::channel::<Message>(OUT_QUEUE);
    let send_timeout = gw.cfg.viewer_send_timeout;
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            match tokio::time::timeout(send_timeout, sink.send(m)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    });
    let mut recheck = Recheck::new(gw.clone(), creds.clone(), caller.clone(), Action::WsSession);
    let mut s = Session {
        gw,
        creds,
        opener: who,
        caller,
        binary,
        tx,
        subs: HashMap::new(),
        watch: None,
    };
    loop {
        let msg = tokio::select! {
            m = stream.next() => match m {
                Some(Ok(m)) => m,
                _ => break,
            },
            frames = recheck.failed() => {
                for f in frames {
                    let _ = s.tx.send(f).await;
                }
                break;
            }
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        match serde_json::from_str::<SocketOp>(text.as_str()) {
            Ok(op) => s.apply(op).await,
            Err(e) => {
                let err = ApiError::invalid(format!("unreadable operation: {e}"));
                let err =
                    s.gw.malformed(Some(&s.opener.user), Action::WsOp, err, &s.caller)
                        .await;
                s.send(Frame::error_for_ref("", err.detail())).await;
            }
        }
    }
    drop(recheck); // no check (nor its audit) after the session ended
    for (_, t) in s.subs.drain() {
        t.abort();
    }
    if let Some(t) = s.watch.take() {
        t.abort();
    }
    drop(s);
    let _ = writer.await;
}

impl Session {
    /// The caller, authenticated for `action` (a failure is audited and answered).
    async fn who(&self, action: Action) -> Result<Principal, ApiError> {
        self.gw
            .authenticate(&self.creds, &self.caller, action)
            .await
    }

    async fn send(&self, frame: Frame) {
        let _ = self
            .tx
            .send(Message::Text(Utf8Bytes::from(frame.to_json())))
            .await;
    }

    async fn apply(&mut self, op: SocketOp) {
        match op {
            SocketOp::Submit { reference, job } => {
                let r = reference.unwrap_or_default();
                let frame = match self.submit(job).await {
                    Ok(job) => Frame::Submitted {
                        reference: r,
                        job: Box::new(job),
                    },
                    Err(e) => Frame::error_for_ref(&r, e.detail()),
                };
                self.send(frame).await;
            }
            SocketOp::Stop { reference, job_id } => {
                self.control(reference, &job_id, KillMode::Stop).await;
            }
            SocketOp::Kill { reference, job_id } => {
                self.control(reference, &job_id, KillMode::Kill).await;
            }
            SocketOp::Subscribe { job_id, from_seq } => {
                match self.subscribe(&job_id, from_seq.unwrap_or(1)).await {
                    Ok(task) => {
                        if let Some(old) = self.subs.insert(job_id, task) {
                            old.abort();
                        }
                    }
                    Err(e) => self.send(Frame::error_for_job(&job_id, e.detail())).await,
                }
            }
            SocketOp::Unsubscribe { job_id } => {
                if let Some(t) = self.subs.remove(&job_id) {
                    t.abort();
                }
            }
            SocketOp::WatchJobs {} => match self.watch_jobs().await {
                Ok(task) => {
                    if let Some(old) = self.watch.replace(task) {
                        old.abort();
                    }
                }
                Err(e) => {
                    self.send(Frame::error_for_op("watch_jobs", e.detail()))
                        .await
                }
            },
            SocketOp::UnwatchJobs {} => {
                if let Some(t) = self.watch.take() {
                    t.abort();
                }
            }
        }
    }

    /// A job id as the client named it (malformed: audited as `action`).
    async fn job_id(&self, who: &Principal, action: Action, id: &str) -> Result<Uuid, ApiError> {
        if let Ok(u) = Uuid::parse_str(id) {
            return Ok(u);
        }
        let e = ApiError::invalid(format!(
            "'{}' is not a job id (a UUID)",
            id.chars().take(64).collect::<String>()
        ));
        Err(self
            .gw
            .malformed(Some(&who.user), action, e, &self.caller)
            .await)
    }

    async fn submit(
        &self,
        job: serde_json::Value,
    ) -> Result<taskwire_core::wire::api::Submitted, ApiError> {
        let action = Action::JobsSubmit;
        let who = self.who(action).await?;
        let req: SubmitRequest = match serde_json::from_value(job) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!(
                    "the request body is not a valid job request: {e}. Send JSON like {SUBMIT_EXAMPLE}"
                );
                let e = ApiError::invalid(msg);
                return Err(self
                    .gw
                    .malformed(Some(&who.user), action, e, &self.caller)
                    .await);
            }
        };
        ops::jobs::submit(&self.gw, &who, &self.caller, req, None).await
    }

    async fn control(&self, reference: Option<String>, job_id: &str, mode: KillMode) {
        let r = reference.unwrap_or_default();
        let action = match mode {
            KillMode::Stop => Action::JobsStop,
            KillMode::Kill => Action::JobsKill,
        };
        let answer = async {
            let who = self.who(action).await?;
            let id = self.job_id(&who, action, job_id).await?;
            ops::control::end(&self.gw, &who, &self.caller, id, mode).await
        }
        .await;
        let frame = match answer {
            Ok(reply) => Frame::Control {
                reference: r,
                reply,
            },
            Err(e) => Frame::error_for_ref(&r, e.detail()),
        };
        self.send(frame).await;
    }

    async fn subscribe(&self, job_id: &str, from_seq: u64) -> Result<JoinHandle<()>, ApiError> {
        let action = Action::JobsStream;
        let who = self.who(action).await?;
        let id = self.job_id(&who, action, job_id).await?;
        let feed = ops::output::feed(&self.gw, &who, &self.caller, id).await?;
        let cursor = Cursor::new(feed, from_seq, self.gw.cfg.viewer_lag_chunks);
        Ok(tokio::spawn(follow(
            cursor,
            id,
            self.binary,
            self.tx.clone(),
        )))
    }

    async fn watch_jobs(&self) -> Result<JoinHandle<()>, ApiError> {
        let who = self.who(Action::JobsWatch).await?;
        let mut changes = ops::watch::start(&self.gw, &who, &self.caller).await?;
        self.send(Frame::Watching).await;
        let tx = self.tx.clone();
        Ok(tokio::spawn(async move {
            while let Some(frame) = changes.next().await {
                let m = Message::Text(Utf8Bytes::from(frame.to_json()));
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        }))
    }
}

/// Feeds one job's chunks into the session's writer, then its end. A live subscription that
/// falls more than `viewer_lag_chunks` behind the feed is dropped with a `slow` frame.
async fn follow(mut cursor: Cursor, job_id: Uuid, binary: bool, tx: mpsc::Sender<Message>) {
    loop {
        let frame = match cursor.step().await {
            Step::Chunk(c) => {
                // A full queue waits: this subscription falls behind (the feed goes on at the
                // pace of faster viewers; `lag` cuts it off when too far back), and a writer
                // that cannot send for `viewer_send_timeout` ends the session.
                if tx.send(c.message(binary)).await.is_err() {
                    return;
                }
                continue;
            }
            Step::Slow { from_seq } => Frame::Slow { job_id, from_seq },
            Step::End(end) => Frame::End {
                job_id: Some(job_id),
                end,
            },
            Step::Wait => {
                if !cursor.changed().await {
                    return;
                }
                continue;
            }
        };
        let _ = tx
            .send(Message::Text(Utf8Bytes::from(frame.to_json())))
            .await;
        return;
    }
}
