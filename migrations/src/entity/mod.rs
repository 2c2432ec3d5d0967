//! The sea-orm entities of the audit store's tables (see the migrations for indexes).

pub mod audit_chain_checkpoints;
pub mod audit_log;
pub mod deleted_jobs;
pub mod executions;
pub mod job_events;
pub mod job_output;
