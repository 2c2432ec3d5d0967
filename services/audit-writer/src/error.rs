//! The one error type of the audit writer.

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "cannot open the audit database {url}: {message}. Check database_url in [audit] (sqlite://PATH or postgres://USER@HOST/DB) and that the database is reachable"
    )]
    Connect { url: String, message: String },
    #[error("cannot bring the audit database schema up to date: {0}")]
    Migrate(String),
    #[error("cannot set up the durable consumer {name}: {message}")]
    Consumer { name: String, message: String },
    #[error(
        "cannot read {what} from the audit database: {source}. Check that the database is reachable"
    )]
    Read {
        what: &'static str,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error(
        "the audit database's schema is behind this taskwire (missing {}); run `taskwire migrate` (or start an audit writer) first",
        pending.join(", ")
    )]
    SchemaBehind { pending: Vec<String> },
    #[error(transparent)]
    Core(#[from] taskwire_core::Error),
}

/// Result alias for the audit writer.
pub type Result<T, E = AuditError> = std::result::Result<T, E>;
