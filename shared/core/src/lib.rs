//! taskwire-core: the one place where the product's shared vocabulary lives.
//!
//! Every service depends on this crate and on nothing else of each other's:
//!
//! - [`names`]: every NATS subject, stream, consumer, bucket and header name. A subject string
//!   is never formatted anywhere else.
//! - [`topology`]: the stream and bucket definitions, created idempotently at startup.
//! - [`wire`]: the JSON payloads that travel on those subjects, each pinned by a test, and
//!   ([`wire::api`]) every document of the public API: HTTP bodies and views, NATS API
//!   payloads, WebSocket and Server-Sent Events frames.
//! - [`catalog`]: typed command parameters and their validation, shared by the executor (which
//!   owns the catalog) and every service that checks input before it reaches an executor.
//! - [`jobs`]: the job store operations on the `tw_jobs` bucket (create, compare-and-set
//!   transitions) and the dispatch publish.
//! - [`schedule`]: when schedules fire (cron with seconds and time zones, DST-correct), and the
//!   schedule store on `tw_schedules` / `tw_schedule_fires`.
//! - [`kv_copy`]: a service's in-memory copy of a bucket's keys, kept current by a watch.
//! - [`kv_read`]: a key's latest value, asked of the leader before it is reported missing.
//! - [`registry`]: the instance registry read from such a copy (gateway, kill broker).
//! - [`serve`]: serving a request/reply subject with a queue group and a graceful stop.
//! - [`retry`]: the backoff every retried step uses.
//! - [`sign`]: signed dispatch (the gateway's signing key, the keys an executor trusts).
//! - [`config`]: layered configuration (defaults, TOML file, `TASKWIRE_` environment).
//! - [`nats`], [`telemetry`], [`units`]: connection, logging, and duration/size parsing.
//! - [`nats_server`]: finding a `nats-server` binary and running it as a child (for
//!   `taskwire up` and the test kit): the only process this crate ever starts.
//! - [`service`]: the shared `main` of the service binaries (config, logging, signals) and the
//!   signal loop `taskwire up` uses too.
//! - [`error`]: the crate's error, with [`ErrorKind`]s callers branch on.
//!
//! This crate never runs a job and never decides who may do what.

pub mod auth;
pub mod catalog;
pub mod config;
pub mod error;
pub mod jobs;
pub mod kv_copy;
pub mod kv_read;
pub mod memory;
pub mod names;
pub mod nats;
pub mod nats_server;
pub mod registry;
pub mod retry;
pub mod schedule;
pub mod serve;
pub mod service;
pub mod sign;
pub mod telemetry;
pub mod topology;
pub mod units;
pub mod wire;

pub use error::{Error, ErrorKind, Result};
pub use names::Namespace;

/// The product version, reported in the instance registry and by `taskwire --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
