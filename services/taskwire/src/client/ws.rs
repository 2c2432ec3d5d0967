//! A job's output stream over a WebSocket with binary chunk frames (subprotocol
//! `taskwire.binary`): the bytes as the job wrote them, with no base64 or JSON to decode. The
//! upgrade goes through the same HTTP client as every other request (token, TLS, proxies);
//! a gateway that answers with JSON frames (`taskwire`) is read as well.

use super::api::Api;
use crate::error::CliError;
use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use std::time::Duration;
use taskwire_core::wire::api::Frame;
use taskwire_core::wire::api::binary::{self, WS_BINARY_PROTOCOL};
use taskwire_core::wire::api::frames::WS_PROTOCOL;
use taskwire_core::wire::output::OutputStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// How long a quiet socket waits before it pings the gateway.
const PING_AFTER: Duration = Duration::from_secs(15);
/// Longest silence (pings unanswered) before the connection counts as lost.
const SILENCE: Duration = Duration::from_secs(45);

/// What arrives on the stream.
#[derive(Debug)]
pub enum Incoming {
    Chunk {
        seq: u64,
        stream: OutputStream,
        data: Bytes,
    },
    /// Any other frame (`end`, `error`).
    Frame(Frame),
    /// The gateway closed the socket (4008: too slow, resume).
    Closed,
}

/// An open output stream.
pub struct Socket {
    ws: WebSocketStream<reqwest::Upgraded>,
    url: String,
    quiet: Duration,
}

/// Why a WebSocket could not be opened: the gateway's own refusal, or something between
/// (a proxy) that does not pass WebSockets on, where Server-Sent Events may still work.
pub enum Refused {
    Error(CliError),
    NoUpgrade,
}

impl Api {
    /// Opens `path` (with `query`) as a WebSocket asking for binary chunk frames.
    pub async fn websocket(&self, path: &str, query: &[(&str, String)]) -> Result<Socket, Refused> {
        let key = base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
        let rb = self
            .request(reqwest::Method::GET, path)
            .query(query)
            .header(reqwest::header::CONNECTION, "Upgrade")
            .header(reqwest::header::UPGRADE, "websocket")
            .header(reqwest::header::SEC_WEBSOCKET_VERSION, "13")
            .header(reqwest::header::SEC_WEBSOCKET_KEY, key)
            .header(
                reqwest::header::SEC_WEBSOCKET_PROTOCOL,
                format!("{WS_BINARY_PROTOCOL}, {WS_PROTOCOL}"),
            );
        let resp = match self.send(rb).await {
            Ok(r) => r,
            Err(CliError::Api(f)) if ![401, 403, 404, 422].contains(&f.status) => {
                return Err(Refused::NoUpgrade);
            }
            Err(e) => return Err(Refused::Error(e)),
        };
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(Refused::NoUpgrade);
        }
        let chosen = resp
            .headers()
            .get(reqwest::header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let upgraded = resp.upgrade().await.map_err(|e| {
            Refused::Error(CliError::Unreachable {
                url: self.conn.url.clone(),
                detail: format!("the WebSocket upgrade failed: {e}"),
            })
        })?;
        tracing::debug!(protocol = ?chosen, "output stream open");
        Ok(Socket {
            ws: WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await,
            url: self.conn.url.clone(),
            quiet: Duration::ZERO,
        })
    }
}

impl Socket {
    /// The next chunk or frame; pings a quiet gateway, and gives up after [`SILENCE`].
    pub async fn next(&mut self) -> Result<Incoming, CliError> {
        loop {
            let msg = match tokio::time::timeout(PING_AFTER, self.ws.next()).await {
                Err(_) => {
                    self.quiet += PING_AFTER;
                    if self.quiet >= SILENCE {
                        return Err(self.lost(format!(
                            "the output stream was silent for {}s",
                            SILENCE.as_secs()
                        )));
                    }
                    let _ = self.ws.send(Message::Ping(Bytes::new())).await;
                    continue;
                }
                Ok(None) => return Ok(Incoming::Closed),
                Ok(Some(Err(e))) => return Err(self.lost(e.to_string())),
                Ok(Some(Ok(m))) => m,
            };
            self.quiet = Duration::ZERO;
            match msg {
                Message::Binary(b) => match binary::decode_chunk(&b) {
                    Ok(c) => {
                        return Ok(Incoming::Chunk {
                            seq: c.seq,
                            stream: c.stream,
                            data: c.data,
                        });
                    }
                    // a kind of a later version: not this client's to read
                    Err(binary::BinaryFrameError::UnknownKind(_)) => continue,
                    Err(e) => return Err(self.bad(e.to_string())),
                },
                Message::Text(t) => match serde_json::from_str::<Frame>(t.as_str()) {
                    Ok(Frame::Chunk {
                        seq, stream, data, ..
                    }) => return Ok(Incoming::Chunk { seq, stream, data }),
                    Ok(f) => return Ok(Incoming::Frame(f)),
                    Err(e) => return Err(self.bad(format!("frame: {e}"))),
                },
                Message::Close(_) => return Ok(Incoming::Closed),
                _ => continue,
            }
        }
    }

    fn lost(&self, detail: String) -> CliError {
        CliError::Unreachable {
            url: self.url.clone(),
            detail,
        }
    }

    fn bad(&self, detail: String) -> CliError {
        CliError::BadAnswer {
            url: self.url.clone(),
            detail,
        }
    }
}
