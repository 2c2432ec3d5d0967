//! The scheduler against real components: nats-server, an executor, a gateway, and scheduler
//! replicas as separate processes (so one can be killed).

#![allow(clippy::unwrap_used)]

mod api;
mod exactly_once;
mod helpers;
mod policies;
mod retention;
