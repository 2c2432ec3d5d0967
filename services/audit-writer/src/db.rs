//! Opening the audit database (SQLite file in WAL mode, or a PostgreSQL pool) and bringing
//! its schema up to date.

use crate::error::{AuditError, Result};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use std::time::Duration;
use taskwire_migrations::{Migrator, MigratorTrait};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(AuditError::Connect {
                url: redact(url),
                message: "unknown scheme".into(),
            })
        }
    }
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Connects (creating the SQLite file and its folder if needed).
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection> {
    let backend = Backend::of(url)?;
    let connect_err = |message: String| AuditError::Connect {
        url: redact(url),
        message,
    };
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10));
    match backend {
        Backend::Sqlite => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| connect_err(format!("cannot create {}: {e}", dir.display())))?;
            }
            // One writer at a time is all SQLite allows; readers run beside it in WAL mode.
            opts.max_connections(4).min_connections(1);
            opts.map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
            });
        }
        Backend::Postgres => {
            opts.max_connections(max_connections.max(1))
                .min_connections(1);
        }
    }
    Database::connect(opts)
        .await
        .map_err(|e| connect_err(e.to_string()))
}

/// Applies every pending migration (safe to run at every start and from several writers).
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    Migrator::up(db, None)
        .await
        .map_err(|e| AuditError::Migrate(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://tw:s3cret@db:5432/taskwire"),
            "postgres://tw:***@db:5432/taskwire"
        );
        assert_eq!(redact("postgres://tw@db/x"), "postgres://tw@db/x");
        assert_eq!(redact("sqlite:///a/b.db"), "sqlite:///a/b.db");
        assert!(Backend::of("mysql://x").is_err());
    }
}
