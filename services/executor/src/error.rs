//! The one error type of the executor. Each variant names the step that failed.

use std::path::PathBuf;

/// Result alias for the executor.
pub type Result<T, E = ExecutorError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("catalog {path}: {message}")]
    Catalog { path: PathBuf, message: String },
    #[error("instance identity in {path}: {message}")]
    Identity { path: PathBuf, message: String },
    #[error("pidfile {path}: {message}")]
    Pidfile { path: PathBuf, message: String },
    #[error("state dir {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid executor configuration: {0}")]
    Config(String),
    #[error("cannot set up consumer {name}: {message}")]
    Consumer { name: String, message: String },
    #[error(transparent)]
    Core(#[from] taskwire_core::Error),
}
