//! taskwire-teststack: the product's services, really started, for a test (dev-only).
//!
//! [`Stack::builder`] starts a private `nats-server` and, as a test asks, executors with a
//! catalog, a gateway with users of several roles ([`users`]), a kill broker and an audit
//! writer, each on its own connection and talking only over NATS, as `taskwire up` runs them.
//! The helpers are named for what a test means: [`Stack::submit`], [`Stack::run`],
//! [`Stack::wait_final`] and [`Stack::output`] go through the public HTTP API as a user;
//! [`Stack::enqueue`], [`Stack::wait_terminal`], [`Stack::events`] and [`Stack::chunks`] work
//! on NATS the way the services do. Every wait waits for the exact state it names, with a
//! bound, and says what it waited for when the bound passes.
//!
//! - [`stack`]: the builder and the stack.
//! - [`auth`]: the stack's NATS keys and config (every identity its own permissions).
//! - [`users`]: the test users, their tokens and roles, and the gateway configuration.
//! - [`executors`]: an executor of a test, that can be drained and started again.
//! - [`api`]: the HTTP helpers (as a user).
//! - [`nats`]: the NATS helpers (job records, events, output chunks, the registry).

pub mod api;
pub mod auth;
pub mod executors;
pub mod nats;
pub mod stack;
pub mod users;

pub use executors::TestExecutor;
pub use stack::{Builder, Stack};
pub use taskwire_testkit::{NatsServer, PgDatabase, TcpProxy, eventually};
pub use users::{gateway_config, token};
