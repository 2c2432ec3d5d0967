//! `GET /api/v1/jobs/{id}/stream`: the job's output from `from_seq` (default 1), then live,
//! then how it ended, as WebSocket frames or (with `Accept: text/event-stream`) Server-Sent
//! Events. The frames are `wire::api::Frame`s: chunks, then one `end`; a socket opened with
//! the subprotocol `taskwire.binary` gets its chunks as binary frames (`wire::api::binary`).
//!
//! A live viewer that falls more than `viewer_lag_chunks` behind the job, or any viewer that
//! cannot take a frame within `viewer_send_timeout`, is closed with code 4008 and a reason
//! naming the `from_seq` to resume from (SSE: `event: slow`). The upgrade checks `Origin` and
//! authenticates with the `Authorization` header or the `bearer.<token>` subprotocol, never a
//! token in the URL.

use super::cursor::{Cursor, Step};
use super::origin;
use super::recheck::Recheck;
use crate::call::Call;
use crate::error::ApiError;
use crate::identity::Action;
use crate::ops;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use taskwire_core::wire::Via;
use taskwire_core::wire::api::binary::WS_BINARY_PROTOCOL;
use taskwire_core::wire::api::frames::{CLOSE_SLOW, WS_PROTOCOL, slow_reason, sse};
use taskwire_core::wire::api::{Frame, StreamOptions};

/// Largest frame accepted from a viewer (they only send control frames).
const MAX_INBOUND: usize = 4 * 1024;

pub async fn upgrade(
    mut call: Call,
    Path(id): Path<String>,
    q: Result<Query<StreamOptions>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let action = Action::JobsStream;
    let wants_sse = call
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let ws = match ws {
        Ok(ws) => Some(ws),
        Err(_) if wants_sse => None,
        Err(_) => {
            return Err(ApiError::invalid(
                "this endpoint streams over a WebSocket, or Server-Sent Events with 'Accept: text/event-stream'",
            ));
        }
    };
    if ws.is_some() {
        call.caller.via = Via::Websocket;
    }
    if let Err(reason) = origin::check(&call.headers, &call.gw.cfg.allowed_origins) {
        call.gw
            .audit(None, action, Some(id.clone()), false, &reason, &call.caller)
            .await?;
        return Err(ApiError::new(crate::error::ErrorCode::Forbidden, reason));
    }
    let who = call.who(action).await?;
    let job_id = call.job_id(&who, action, &id).await?;
    let q = call.query(&who, action, q).await?;
    let feed = ops::output::feed(&call.gw, &who, &call.caller, job_id).await?;
    // SSE clients resume with Last-Event-ID (the last sequence they got).
    let last_event = call
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let from = q.from_seq.or(last_event.map(|l| l + 1)).unwrap_or(1).max(1);
    let cursor = Cursor::new(feed, from, call.gw.cfg.viewer_lag_chunks);
    let send_timeout = call.gw.cfg.viewer_send_timeout;
    let Call {
        gw,
        caller,
        credentials,
        ..
    } = call;
    let Some(ws) = ws else {
        let recheck = Recheck::new(gw, credentials, caller, action);
        return Ok(events(cursor, recheck).into_response());
    };
    let ws = ws.protocols([WS_BINARY_PROTOCOL, WS_PROTOCOL]);
    let binary = is_binary(&ws);
    Ok(ws
        .max_message_size(MAX_INBOUND)
        .max_frame_size(MAX_INBOUND)
        .on_upgrade(move |socket| {
            let recheck = Recheck::new(gw, credentials, caller, Action::WsSession);
            viewer(socket, cursor, binary, send_timeout, recheck)
        }))
}

/// Whether the client chose binary chunk frames (the subprotocol `taskwire.binary`).
pub fn is_binary(ws: &WebSocketUpgrade) -> bool {
    ws.selected_protocol()
        .is_some_and(|p| p.as_bytes() == WS_BINARY_PROTOCOL.as_bytes())
}

/// Sends the job's frames to one WebSocket viewer until the end, a cut-off or a close.
async fn viewer(
    mut socket: WebSocket,
    mut cursor: Cursor,
    binary: bool,
    send_timeout: Duration,
    mut recheck: Recheck,
) {
    loop {
        match cursor.step().await {
            Step::Chunk(c) => {
                let send = socket.send(c.message(binary));
                match tokio::time::timeout(send_timeout, send).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        // `c` did not go out: resume from it.
                        return close_slow(&mut socket, c.seq).await;
                    }
                }
            }
            Step::Slow { from_seq } => return close_slow(&mut socket, from_seq).await,
            Step::End(end) => {
                let frame = Frame::End { job_id: None, end };
                let _ = socket
                    .send(Message::Text(Utf8Bytes::from(frame.to_json())))
                    .await;
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 1000,
                        reason: "job finished".into(),
                    })))
                    .await;
                return;
            }
            Step::Wait => {
                tokio::select! {
                    more = cursor.changed() => if !more { return },
                    msg = socket.recv() => match msg {
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        _ => {}
                    },
                    frames = recheck.failed() => {
                        for f in frames {
                            let _ = socket.send(f).await;
                        }
                        return;
                    }
                }
            }
        }
    }
}

/// The same stream as Server-Sent Events: `event: chunk` (id = sequence) with the chunk
/// frame as data, then `event: end`; a live viewer too far behind gets `event: slow` and the
/// end of the response; a token that stops authenticating, `event: error`.
fn events(
    cursor: Cursor,
    recheck: Recheck,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    struct State {
        cursor: Cursor,
        recheck: Recheck,
        finished: bool,
    }
    let refused = |e: ApiError| {
        let body = serde_json::to_string(&e.detail()).unwrap_or_default();
        Event::default().event(sse::ERROR).data(body)
    };
    let init = State {
        cursor,
        recheck,
        finished: false,
    };
    let stream = futures::stream::unfold(init, move |mut st| async move {
        if st.finished {
            return None;
        }
        loop {
            if let Some(e) = st.recheck.expired_now() {
                st.finished = true;
                return Some((Ok(refused(e)), st));
            }
            match st.cursor.step().await {
                Step::Chunk(c) => {
                    let ev = Event::default()
                        .event(sse::CHUNK)
                        .id(c.seq.to_string())
                        .data(c.json().as_str());
                    return Some((Ok(ev), st));
                }
                Step::Slow { from_seq } => {
                    st.finished = true;
                    let ev = Event::default()
                        .event(sse::SLOW)
                        .data(slow_reason(from_seq));
                    return Some((Ok(ev), st));
                }
                Step::End(end) => {
                    st.finished = true;
                    let frame = Frame::End { job_id: None, end };
                    let ev = Event::default().event(sse::END).data(frame.to_json());
                    return Some((Ok(ev), st));
                }
                Step::Wait => {
                    tokio::select! {
                        more = st.cursor.changed() => if !more { return None },
                        e = st.recheck.expired() => {
                            st.finished = true;
                            return Some((Ok(refused(e)), st));
                        }
                    }
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Closes a viewer that could not keep up, saying where to resume.
pub async fn close_slow(socket: &mut WebSocket, from_seq: u64) {
    let frame = Message::Close(Some(CloseFrame {
        code: CLOSE_SLOW,
        reason: slow_reason(from_seq).into(),
    }));
    // A viewer that reads nothing at all cannot take even this; it is dropped either way.
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.send(frame)).await;
}
