//! The one error type of the scheduler.

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Core(#[from] taskwire_core::Error),
}

/// Result alias for the scheduler.
pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;
