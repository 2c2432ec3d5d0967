//! An open WebSocket checks every `ws_recheck` that the token it was opened with still
//! authenticates (a JWT expires). One that no longer does is told why, closed with code 4001
//! ("sign in again"), and everything it followed stops; the failure is audited (`ws.session`).

use crate::error::ApiError;
use crate::state::{AppState, Caller};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use axum::http::HeaderMap;
use serde_json::json;

/// Close code for "the token no longer authenticates; sign in again".
pub const CLOSE_UNAUTHORIZED: u16 = 4001;

pub struct Recheck {
    st: AppState,
    headers: HeaderMap,
    caller: Caller,
    timer: tokio::time::Interval,
}

impl Recheck {
    pub fn new(st: AppState, headers: HeaderMap, caller: Caller) -> Self {
        let every = st.cfg.ws_recheck;
        let timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        Self {
            st,
            headers,
            caller,
            timer,
        }
    }

    /// Waits for the next check; `Some` with the two frames to send (why, then the close)
    /// when the token no longer authenticates.
    pub async fn failed(&mut self) -> Option<[Message; 2]> {
        loop {
            self.timer.tick().await;
            if let Err(e) = self
                .st
                .authenticate(&self.headers, &self.caller, "ws.session")
                .await
            {
                return Some(frames(&e));
            }
        }
    }
}

fn frames(e: &ApiError) -> [Message; 2] {
    let why = json!({"type": "error", "op": "session",
        "error": {"code": e.code, "message": e.message}});
    [
        Message::Text(Utf8Bytes::from(why.to_string())),
        Message::Close(Some(CloseFrame {
            code: CLOSE_UNAUTHORIZED,
            reason: Utf8Bytes::from_static("the token no longer authenticates; sign in again"),
        })),
    ]
}
