//! The one error type of taskwire-core. Each variant names the step that failed; [`Error::kind`]
//! says what a caller can branch on (a conflict to retry or report, an outage to wait out).

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
    /// NATS refused this service's identity, or the credentials could not be used.
    #[error("NATS at {url} refused the connection: {message}")]
    Refused { url: String, message: String },
    /// A key or credentials file cannot be read, written or used.
    #[error("key file {path}: {message}")]
    Keys { path: PathBuf, message: String },
    /// A NATS JWT (the auth callout's) that could not be made or read.
    #[error("NATS JWT: {step}: {message}")]
    NatsJwt { step: &'static str, message: String },
    #[error("cannot set up JetStream {what} '{name}': {message}")]
    Topology {
        what: &'static str,
        name: String,
        message: String,
    },
    /// An id is already used by a different value (a job id by another job).
    #[error("{what} {key} already exists with different content")]
    Taken { what: &'static str, key: String },
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
    /// A compare-and-set lost: someone else changed the value since it was read.
    #[error("{what} {key} changed meanwhile; read it again and retry")]
    Changed { what: &'static str, key: String },
    #[error("schedule store: {step}: {message}")]
    ScheduleStore { step: &'static str, message: String },
    #[error("cannot publish to {subject}: {message}")]
    Publish { subject: String, message: String },
    #[error(
        "cannot subscribe to {subject}: {message}. Check that NATS allows this service to subscribe there"
    )]
    Subscribe { subject: String, message: String },
    #[error("cannot encode or decode {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// An output chunk that cannot be read (its headers, or a compressed payload).
    #[error("output chunk: {0}")]
    Chunk(String),
    #[error("invalid name '{value}' for {what}: {rule}")]
    InvalidName {
        what: &'static str,
        value: String,
        rule: &'static str,
    },
}

/// What kind of failure an [`Error`] is: what a caller may branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration is wrong; fix it and start again.
    Config,
    /// NATS (or a stream, bucket, or the server behind them) did not do what was asked; the
    /// same request may succeed later.
    Unavailable,
    /// The request contradicts what is stored: another writer won a compare-and-set, or an id
    /// is taken by something else, or a job is not in the state the request needs.
    Conflict,
    /// What was named does not exist.
    NotFound,
    /// The request itself is invalid (too large, a bad name); repeating it cannot help.
    Invalid,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ConfigRead { .. }
            | Error::Config(_)
            | Error::Refused { .. }
            | Error::Keys { .. } => ErrorKind::Config,
            Error::Connect { .. }
            | Error::Topology { .. }
            | Error::JobStore { .. }
            | Error::ScheduleStore { .. }
            | Error::Publish { .. }
            | Error::Subscribe { .. }
            | Error::Json { .. } => ErrorKind::Unavailable,
            Error::WrongState { .. } | Error::Changed { .. } | Error::Taken { .. } => {
                ErrorKind::Conflict
            }
            Error::NoSuchJob(_) => ErrorKind::NotFound,
            Error::TooLarge { .. }
            | Error::InvalidName { .. }
            | Error::NatsJwt { .. }
            | Error::Chunk(_) => ErrorKind::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_and_outages_are_told_apart() {
        let lost = Error::Changed {
            what: "schedule",
            key: "s1".into(),
        };
        assert_eq!(lost.kind(), ErrorKind::Conflict);
        let outage = Error::ScheduleStore {
            step: "updating a schedule",
            message: "timed out".into(),
        };
        assert_eq!(outage.kind(), ErrorKind::Unavailable);
        assert_eq!(Error::NoSuchJob("j".into()).kind(), ErrorKind::NotFound);
    }
}
