//! `GET /api/v1/jobs/{id}/stream` (WebSocket, or Server-Sent Events with
//! `Accept: text/event-stream`): the job's output from `from_seq` (default 1), then live, then
//! a final message with the state, exit code and result.
//!
//! Frames are JSON text: `{"type":"chunk","seq":N,"stream":"stdout","data":"<base64>"}` and
//! finally `{"type":"end","state":...,"exit_code":...,"last_seq":N}`. Replay goes at the
//! viewer's pace; a live viewer that falls more than `viewer_lag_chunks` behind the job, or any
//! viewer that cannot take a frame within `viewer_send_timeout`, is closed with code 4008
//! and a reason naming the `from_seq` to resume from. The upgrade checks `Origin` (same origin
//! or `allowed_origins`; `null` is refused) and authenticates with the `Authorization` header
//! or the `bearer.<token>` subprotocol, never a token in the URL.

use crate::error::{ApiError, ErrorCode};
use crate::feed::Feed;
use crate::state::{AppState, Caller};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Close code for a viewer that could not keep up.
pub const CLOSE_SLOW: u16 = 4008;
/// Largest frame accepted from a viewer (they only send control frames).
const MAX_INBOUND: usize = 4 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    pub from_seq: Option<u64>,
}

pub async fn upgrade(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let wants_sse = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let ws = match ws {
        Ok(ws) => Some(ws),
        Err(_) if wants_sse => None,
        Err(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "this endpoint streams over a WebSocket, or Server-Sent Events with 'Accept: text/event-stream'",
            ));
        }
    };
    let caller = Caller {
        source: addr.to_string(),
        ip: Some(addr.ip()),
        via: if ws.is_some() {
            taskwire_core::wire::Via::Websocket
        } else {
            taskwire_core::wire::Via::Http
        },
    };
    if let Err(reason) = check_origin(&headers, &st.cfg.allowed_origins) {
        st.audit(
            None,
            "jobs.stream",
            Some(id.clone()),
            false,
            &reason,
            &caller,
        )
        .await?;
        return Err(ApiError::new(ErrorCode::Forbidden, reason));
    }
    let record = super::jobs::load_job(&st, &headers, &caller, "jobs.stream", &id).await?;
    let feed = st.feeds.get(&record, &st);
    // SSE clients resume with Last-Event-ID (the last sequence they got).
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let from = q.from_seq.or(last_event.map(|l| l + 1)).unwrap_or(1).max(1);
    let lag = st.cfg.viewer_lag_chunks;
    let send_timeout = st.cfg.viewer_send_timeout;
    let Some(ws) = ws else {
        let recheck = super::recheck::Recheck::new(st.clone(), headers, caller, "jobs.stream");
        return Ok(sse(feed, from, lag, recheck).into_response());
    };
    Ok(ws
        .protocols([crate::auth::WS_PROTOCOL])
        .max_message_size(MAX_INBOUND)
        .max_frame_size(MAX_INBOUND)
        .on_upgrade(move |socket| {
            let recheck = super::recheck::Recheck::new(st.clone(), headers, caller, "ws.session");
            viewer(socket, feed, from, lag, send_timeout, recheck)
        }))
}

/// Same origin (scheme-less comparison with `Host`) or an allowed origin; no `Origin` header
/// (non-browser clients) is accepted; `null` is not.
pub(crate) fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("null");
    if allowed.iter().any(|a| a == origin) {
        return Ok(());
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| !host.is_empty() && o == host);
    if same {
        Ok(())
    } else {
        Err(format!(
            "WebSocket origin '{origin}' is not allowed; add it to [gateway] allowed_origins"
        ))
    }
}

async fn viewer(
    mut socket: WebSocket,
    feed: Arc<Feed>,
    from_seq: u64,
    lag: usize,
    send_timeout: Duration,
    mut recheck: super::recheck::Recheck,
) {
    let mut progress = feed.subscribe();
    let mut next = (from_seq - 1) as usize;
    // Replaying the past goes at the viewer's pace (it is in shared memory); once a viewer
    // has caught up with the live edge, falling behind it by more than `lag` cuts it off.
    let mut live = false;
    loop {
        let p = progress.borrow_and_update().clone();
        if next >= p.chunks {
            live = true;
        }
        while next < progress.borrow().chunks {
            for c in feed.chunks_from(next, 64) {
                // Behind by more than allowed: cut off (the job and the others never wait).
                if live && progress.borrow().chunks.saturating_sub(next) > lag {
                    close(&mut socket, next).await;
                    return;
                }
                let send = socket.send(Message::Text(c.frame.clone()));
                match tokio::time::timeout(send_timeout, send).await {
                    Ok(Ok(())) => next += 1,
                    Ok(Err(_)) => return,
                    Err(_) => {
                        close(&mut socket, next).await;
                        return;
                    }
                }
            }
        }
        if let Some(done) = &p.done
            && next as u64 >= done.last_seq
        {
            let mut end = serde_json::to_value(done).unwrap_or_default();
            end["type"] = "end".into();
            let _ = socket
                .send(Message::Text(Utf8Bytes::from(end.to_string())))
                .await;
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 1000,
                    reason: "job finished".into(),
                })))
                .await;
            return;
        }
        tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    return;
                }
            }
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

/// The same stream as Server-Sent Events: `event: chunk` (id = sequence) with the chunk frame
/// as data, then `event: end`; a live viewer too far behind gets `event: slow` and the end of
/// the response.
fn sse(
    feed: Arc<Feed>,
    from_seq: u64,
    lag: usize,
    recheck: super::recheck::Recheck,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    struct St {
        feed: Arc<Feed>,
        progress: tokio::sync::watch::Receiver<crate::feed::Progress>,
        next: usize,
        live: bool,
        finished: bool,
        recheck: super::recheck::Recheck,
    }
    let progress = feed.subscribe();
    let init = St {
        feed,
        progress,
        next: (from_seq - 1) as usize,
        live: false,
        finished: false,
        recheck,
    };
    // `event: error` with `{"code","message"}`, then the end of the response.
    let refused = |e: ApiError| {
        let body = serde_json::json!({"code": e.code, "message": e.message});
        Event::default().event("error").data(body.to_string())
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
            let p = st.progress.borrow_and_update().clone();
            if st.next >= p.chunks {
                st.live = true;
            }
            if st.next < p.chunks {
                if st.live && p.chunks - st.next > lag {
                    st.finished = true;
                    let ev = Event::default().event("slow").data(format!(
                        "viewer too slow; reconnect with from_seq={}",
                        st.next + 1
                    ));
                    return Some((Ok(ev), st));
                }
                let c = st.feed.chunks_from(st.next, 1).pop()?;
                st.next += 1;
                let ev = Event::default()
                    .event("chunk")
                    .id(c.seq.to_string())
                    .data(c.frame.as_str());
                return Some((Ok(ev), st));
            }
            if let Some(done) = &p.done
                && st.next as u64 >= done.last_seq
            {
                st.finished = true;
                let mut end = serde_json::to_value(done).unwrap_or_default();
                end["type"] = "end".into();
                return Some((Ok(Event::default().event("end").data(end.to_string())), st));
            }
            tokio::select! {
                changed = st.progress.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                e = st.recheck.expired() => {
                    st.finished = true;
                    return Some((Ok(refused(e)), st));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn close(socket: &mut WebSocket, next: usize) {
    let reason = format!("viewer too slow; reconnect with from_seq={}", next + 1);
    let frame = Message::Close(Some(CloseFrame {
        code: CLOSE_SLOW,
        reason: reason.into(),
    }));
    // A viewer that reads nothing at all cannot take even this; it is dropped either way.
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.send(frame)).await;
}
