//! The audit writer against a real nats-server and real databases (SQLite files and fresh
//! PostgreSQL databases on the local server).

#![allow(clippy::unwrap_used)]

mod bytes;
mod chain;
mod durability;
mod helpers;
mod history;
mod origin;
mod retention;
mod rows;
mod store;
