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
}
