//! Connecting to NATS: one named connection per service, retried at startup, reconnecting
//! forever afterwards (a NATS restart must not kill a service).

use crate::error::{Error, Result};
use async_nats::jetstream;
use std::time::Duration;

/// Default NATS URL when none is configured.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Connects as `name` (shown in the server's connection list).
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(url)
        .await
        .map_err(|source| Error::Connect {
            url: url.to_string(),
            source,
        })
}

/// Connects without retrying: for commands that should fail fast with a clear error.
pub async fn connect_once(url: &str, name: &str) -> Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|source| Error::Connect {
            url: url.to_string(),
            source,
        })
}

/// A JetStream context with bounded ack waits and back-pressure on in-flight publishes.
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_ack_inflight(4096)
        .backpressure_on_inflight(true)
        .build(client)
}
