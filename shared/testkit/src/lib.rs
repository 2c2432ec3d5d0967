//! taskwire-testkit: real components for tests and benchmarks, never mocks.
//!
//! [`NatsServer`] starts a private `nats-server` (2.11 or newer) with JetStream on a free
//! loopback port and its own store directory, can stop and restart it mid-test on the same
//! port and store, and kills it on drop. Every test gets its own server, so tests run in
//! parallel without sharing state. [`PgDatabase`] gives a test its own database on the local
//! PostgreSQL server, [`TcpProxy`] can take a server away from a service and give it back,
//! and [`eventually`] waits for a condition with a bound.

mod nats_server;
mod postgres;
mod proxy;
mod wait;

pub use nats_server::NatsServer;
pub use postgres::{DEFAULT_ADMIN_URL, PgDatabase};
pub use proxy::TcpProxy;
pub use wait::eventually;

/// The workspace root (where `.taskwire/tools` lives when ops/install-deps ran).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| std::path::PathBuf::from("."))
}
