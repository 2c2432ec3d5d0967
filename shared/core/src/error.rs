//! The one error type of taskwire-core. Each variant names the step that failed.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the shared layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot read config file {path}: {source}. Check the path given with --config or TASKWIRE_CONFIG"
    )]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(
        "cannot connect to NATS at {url}: {source}. Start a nats-server 2.11 or newer there, or set TASKWIRE_NATS_URL"
    )]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot set up JetStream {what} '{name}': {message}")]
    Topology {
        what: &'static str,
        name: String,
        message: String,
    },
    #[error("job store: {step} for job {job_id}: {message}")]
    JobStore {
        step: &'static str,
        job_id: String,
        message: String,
    },
    #[error("job {job_id} is {actual}, expected {expected}")]
    WrongState {
        job_id: String,
        actual: String,
        expected: String,
    },
    #[error(
        "{what} is {size} bytes, more than the {max} allowed; pass large data by reference (a path or an id), not as a parameter"
    )]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    #[error("job {0} does not exist")]
    NoSuchJob(String),
    #[error("schedule store: {step}: {message}")]
    ScheduleStore { step: &'static str, message: String },
    #[error("cannot publish to {subject}: {message}")]
    Publish { subject: String, message: String },
    #[error("cannot encode or decode {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid name '{value}' for {what}: {rule}")]
    InvalidName {
        what: &'static str,
        value: String,
        rule: &'static str,
    },
}
