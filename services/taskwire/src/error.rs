//! The one error type of the `taskwire` command.

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
    Api(#[from] crate::client::api::ApiFailure),
    #[error(
        "the server at {url} sent an answer this client cannot read ({detail}); is it a taskwire gateway of the same version?"
    )]
    BadAnswer { url: String, detail: String },
    #[error("cannot write the output: {0}")]
    Write(std::io::Error),
    #[error("{0}")]
    Interrupted(String),
}
