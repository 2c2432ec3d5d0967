//! The one error type of the `taskwire` command, and [`ApiFailure`], an error answer of the
//! gateway's API. A leaf: it uses nothing of the client, so the client's modules can all use
//! it.

use crate::text::clean;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Core(#[from] taskwire_core::Error),
    #[error(transparent)]
    Executor(#[from] taskwire_executor::ExecutorError),
    #[error(transparent)]
    Gateway(#[from] taskwire_gateway::GatewayError),
    #[error(transparent)]
    KillBroker(#[from] taskwire_kill_broker::KillBrokerError),
    #[error(transparent)]
    Audit(#[from] taskwire_audit_writer::AuditError),
    #[error(transparent)]
    Scheduler(#[from] taskwire_scheduler::SchedulerError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot start nats-server: {0}")]
    Nats(String),
    #[error("cannot prepare the state dir {path}: {source}")]
    StateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a service failed: {0}")]
    Service(String),
    #[error(
        "cannot reach the taskwire server at {url}: {detail}. Check --url or TASKWIRE_URL (or `taskwire login`) and that the gateway is running"
    )]
    Unreachable { url: String, detail: String },
    #[error(transparent)]
    Api(#[from] ApiFailure),
    #[error(
        "the server at {url} sent an answer this client cannot read ({detail}); is it a taskwire gateway of the same version?"
    )]
    BadAnswer { url: String, detail: String },
    #[error("cannot write the output: {0}")]
    Write(std::io::Error),
    #[error("{0}")]
    Interrupted(String),
}

/// An error answer of the API, with what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub status: u16,
    /// The API's stable code (`forbidden`, `not_found`, ...).
    pub code: String,
    pub message: String,
    pub url: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The message comes from the server: no control characters reach the terminal.
        let message = clean(&self.message);
        match self.code.as_str() {
            "unauthorized" => write!(
                f,
                "the server at {} refused the token: {message}. Check --token or TASKWIRE_TOKEN (or `taskwire login`); `taskwire token` creates a token",
                self.url
            ),
            "forbidden" => write!(f, "denied: {message}"),
            _ => f.write_str(&message),
        }
    }
}

impl std::error::Error for ApiFailure {}
