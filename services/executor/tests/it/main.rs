//! Executor integration tests: a private nats-server per test, real processes, real bytes.

// Test support code: a failed setup step should panic with its cause.
#![allow(clippy::unwrap_used)]

mod helpers;

mod binary;
mod dispatch;
mod identity;
mod injection;
mod lifecycle;
mod outage;
mod output;
mod own_consumer;
mod signed;
