//! Gateway integration tests: a private nats-server, a real executor, the gateway over real
//! HTTP and WebSocket.

// Test support code: a failed setup step should panic with its cause.
#![allow(clippy::unwrap_used)]

mod helpers;

mod acl;
mod api;
mod authn;
mod console;
mod control;
mod direct_nats;
mod history;
mod nats_api;
mod outage;
mod promises;
mod sources;
mod stream;
mod window;
