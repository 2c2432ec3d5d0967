//! An open WebSocket or Server-Sent Events stream checks every `ws_recheck` that the token it
//! was opened with still authenticates (a JWT expires). A socket that no longer does is told
//! why, closed with code 4001 ("sign in again"), and everything it followed stops; an event
//! stream gets `event: error` and ends. The failure is audited (`ws.session`, or
//! `jobs.stream` for an event stream).

use crate::auth::Credentials;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::identity::{Action, Caller};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use std::sync::Arc;
use taskwire_core::wire::api::Frame;
use taskwire_core::wire::api::frames::CLOSE_UNAUTHORIZED;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The check runs in its own task, so a socket busy with traffic cannot cancel it half-way
/// (between the failed authentication, its audit and the answer).
pub struct Recheck {
    verdict: oneshot::Receiver<ApiError>,
    task: JoinHandle<()>,
}

impl Recheck {
    /// Starts checking; a failure is audited as `action`.
    pub fn new(gw: Arc<Gateway>, creds: Credentials, caller: Caller, action: Action) -> Self {
        let every = gw.cfg.ws_recheck;
        let (tx, verdict) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                timer.tick().await;
                if let Err(e) = gw.authenticate(&creds, &caller, action).await {
                    let _ = tx.send(e);
                    return;
                }
            }
        });
        Self { verdict, task }
    }

    /// Waits until the token no longer authenticates, and says why. Cancel-safe: use it in a
    /// `select!` loop. Never resolves again after it returned once.
    pub async fn expired(&mut self) -> ApiError {
        if self.verdict.is_terminated() {
            return std::future::pending().await;
        }
        match (&mut self.verdict).await {
            Ok(e) => e,
            Err(_) => std::future::pending().await,
        }
    }

    /// Why the token no longer authenticates, if a check found that already.
    pub fn expired_now(&mut self) -> Option<ApiError> {
        if self.verdict.is_terminated() {
            return None;
        }
        self.verdict.try_recv().ok()
    }

    /// [`Recheck::expired`] as the two socket frames to send: why, then the close.
    pub async fn failed(&mut self) -> [Message; 2] {
        frames(&self.expired().await)
    }
}

impl Drop for Recheck {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn frames(e: &ApiError) -> [Message; 2] {
    let why = Frame::error_for_op("session", e.detail());
    [
        Message::Text(Utf8Bytes::from(why.to_json())),
        Message::Close(Some(CloseFrame {
            code: CLOSE_UNAUTHORIZED,
            reason: Utf8Bytes::from_static("the token no longer authenticates; sign in again"),
        })),
    ]
}
