//! Every operation of the API, as a typed function: `ops::<area>::<verb>(&Gateway,
//! &Principal, &Caller, input) -> Result<answer, ApiError>`. The caller is authenticated and
//! the input read already (by a door: HTTP, the multiplexed socket, the NATS API, a schedule
//! fire); an operation checks the ACL, audits each decision, does the work and returns a
//! document of `taskwire_core::wire::api`. An operation never sees a header, a socket or a
//! JSON value of the request.
//!
//! | area | operations |
//! | --- | --- |
//! | [`jobs`] | submit, get, list (and finding a job a caller may read) |
//! | [`delayed`] | delayed jobs: create, find, view, cancel, the waiting list |
//! | [`control`] | stop and kill (cancel while queued), delete |
//! | [`output`] | download a log, follow a job's output (its feed) |
//! | [`follow`] | follow a job's output over NATS (its feed, audited as `jobs.follow`) |
//! | [`watch`] | every change of the jobs a caller may read |
//! | [`schedules`] | list, create, get, update, pause, resume, delete, history, preview |
//! | [`audit_log`] | the audit log |
//! | [`fleet`] | who I am, the commands I may run, the instances |
//!
//! Pure rules they use: [`targets`] (where a job may run), [`schedule_rules`] (reading a
//! schedule body into a timing and a target).

pub mod audit_log;
pub mod control;
pub mod delayed;
pub mod fleet;
pub mod follow;
pub mod jobs;
pub mod output;
pub mod schedule_rules;
pub mod schedules;
pub mod targets;
pub mod watch;
