//! The answer of `tw.api.jobs.follow`: a job's output, delivered to the request's reply
//! subject (the caller's own inbox) as a stream of messages, in this order:
//!
//! 1. the first reply, a `NatsReply`: `{"ok": {"job_id", "from_seq"}}` (what follows), or an
//!    error (then nothing more; refusals are answered by `nats_api` before this module runs);
//! 2. one message per chunk from `from_seq`: headers `Tw-Seq` and `Tw-Stream`, the raw bytes
//!    as the body, each sequence once and in order (the job's shared feed, as a WebSocket
//!    viewer reads it);
//! 3. the last message, with header `Tw-End`: `end` (body: the `end` frame, the job's
//!    `JobEnd`), `slow` (body: a `slow` frame naming the `from_seq` to follow again from: the
//!    follow fell more than `viewer_lag_chunks` behind the live job) or `error` (body: an
//!    `error` frame: the token stopped authenticating, or the gateway is stopping).
//!
//! Every message goes out with a reply subject of the gateway's, so nats-server tells the
//! gateway at once (a "no responders" status) when nobody listens on the inbox any more: the
//! client disconnected, or its session ended. The follow then stops; it never publishes a
//! log into the void, and the feed's memory is given back with it.

use crate::auth::Credentials;
use crate::feed::Feed;
use crate::gateway::Gateway;
use crate::identity::{Action, Caller};
use crate::socket::cursor::{Cursor, Step};
use crate::socket::recheck::Recheck;
use async_nats::{HeaderMap, Subject, Subscriber};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use std::sync::Arc;
use taskwire_core::names::{HDR_END, HDR_SEQ, HDR_STREAM};
use taskwire_core::wire::api::direct::{Following, follow_end};
use taskwire_core::wire::api::{ErrorCode, ErrorDetail, Frame, NatsReply};
use tokio_util::sync::CancellationToken;

/// One follow being delivered.
pub struct Delivery {
    pub gw: Arc<Gateway>,
    /// What the request presented, checked again every `ws_recheck`.
    pub creds: Credentials,
    pub caller: Caller,
    pub feed: Arc<Feed>,
    pub from_seq: u64,
    /// The request's reply subject: where every message goes.
    pub reply: Subject,
}

impl Delivery {
    /// Sends the first reply, the chunks and the end; returns when the job's output is all
    /// sent, the follow was cut, nobody listens any more, or `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let client = self.gw.client.clone();
        let job_id = self.feed.job_id;
        // Where nats-server says "no responders" once the inbox has no subscriber.
        let probe = client.new_inbox();
        let mut gone = match client.subscribe(probe.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(job = %job_id, error = %e, "cannot watch a follower's inbox");
                let e = crate::error::ApiError::internal("following the job", e);
                let body = reply_body(&NatsReply::<()>::Error(e.detail()));
                let _ = client.publish(self.reply, body).await;
                return;
            }
        };
        let lag = self.gw.cfg.viewer_lag_chunks;
        let mut cursor = Cursor::new(self.feed, self.from_seq, lag);
        let mut recheck = Recheck::new(self.gw, self.creds, self.caller, Action::JobsFollow);
        let out = Out {
            client,
            reply: self.reply,
            probe: probe.into(),
        };
        let accepted = NatsReply::Ok(Following {
            job_id,
            from_seq: cursor.next_seq(),
        });
        if !out.send(HeaderMap::new(), reply_body(&accepted)).await {
            return;
        }
        loop {
            if left(&mut gone) {
                return;
            }
            if let Some(e) = recheck.expired_now() {
                let frame = Frame::error_for_job(&job_id.to_string(), e.detail());
                return out.end(follow_end::ERROR, &frame).await;
            }
            if stop.is_cancelled() {
                return out
                    .end(follow_end::ERROR, &stopping(&job_id, &cursor))
                    .await;
            }
            match cursor.step().await {
                Step::Chunk(c) => {
                    let mut h = HeaderMap::new();
                    h.insert(HDR_SEQ, c.seq.to_string().as_str());
                    h.insert(HDR_STREAM, c.stream.as_str());
                    if !out.send(h, c.data()).await {
                        return;
                    }
                }
                Step::Slow { from_seq } => {
                    let frame = Frame::Slow { job_id, from_seq };
                    return out.end(follow_end::SLOW, &frame).await;
                }
                Step::End(end) => {
                    let frame = Frame::End {
                        job_id: Some(job_id),
                        end,
                    };
                    return out.end(follow_end::END, &frame).await;
                }
                Step::Wait => {
                    tokio::select! {
                        more = cursor.changed() => if !more { return },
                        e = recheck.expired() => {
                            let frame = Frame::error_for_job(&job_id.to_string(), e.detail());
                            return out.end(follow_end::ERROR, &frame).await;
                        }
                        _ = stop.cancelled() => {
                            return out.end(follow_end::ERROR, &stopping(&job_id, &cursor)).await;
                        }
                        _ = wait_gone(&mut gone) => return,
                    }
                }
            }
        }
    }
}

/// Where the follow's messages go.
struct Out {
    client: async_nats::Client,
    reply: Subject,
    probe: Subject,
}

impl Out {
    /// Publishes one message; `false` when the connection is closed.
    async fn send(&self, headers: HeaderMap, body: Bytes) -> bool {
        self.client
            .publish_with_reply_and_headers(self.reply.clone(), self.probe.clone(), headers, body)
            .await
            .is_ok()
    }

    /// Publishes the last message: `Tw-End: <kind>` and `frame`.
    async fn end(&self, kind: &str, frame: &Frame) {
        let mut h = HeaderMap::new();
        h.insert(HDR_END, kind);
        let _ = self
            .client
            .publish_with_headers(self.reply.clone(), h, Bytes::from(frame.to_json()))
            .await;
    }
}

/// Whether nats-server said, by now, that nobody listens on the follower's inbox.
fn left(gone: &mut Subscriber) -> bool {
    while let Some(m) = gone.next().now_or_never() {
        match m {
            None => return true,
            Some(m) if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) => return true,
            Some(_) => {}
        }
    }
    false
}

/// Waits until nats-server says that nobody listens on the follower's inbox.
async fn wait_gone(gone: &mut Subscriber) {
    while let Some(m) = gone.next().await {
        if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            return;
        }
    }
}

/// The end of a follow cut short by a gateway that stops.
fn stopping(job_id: &uuid::Uuid, cursor: &Cursor) -> Frame {
    Frame::error_for_job(
        &job_id.to_string(),
        ErrorDetail {
            code: ErrorCode::Unavailable,
            message: format!(
                "the gateway is stopping; follow again with from_seq={}",
                cursor.next_seq()
            ),
        },
    )
}

fn reply_body<T: serde::Serialize>(r: &NatsReply<T>) -> Bytes {
    serde_json::to_vec(r).unwrap_or_default().into()
}
