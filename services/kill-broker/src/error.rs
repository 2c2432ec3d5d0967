//! The one error type of the kill broker.

#[derive(Debug, thiserror::Error)]
pub enum KillBrokerError {
    #[error(transparent)]
    Core(#[from] taskwire_core::Error),
}

/// Result alias for the kill broker.
pub type Result<T, E = KillBrokerError> = std::result::Result<T, E>;
