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

/// The file a `sqlite:` URL names (`None` for another database).
pub fn sqlite_path(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite:")?;
    let path = path.strip_prefix("//").unwrap_or(path);
    Some(path.split('?').next().unwrap_or(path))
}

/// Connects to a database that must already exist: a tool that only reads (`taskwire audit
/// verify`) must not create an empty SQLite file where the user mistyped a path.
pub async fn connect_existing(url: &str) -> Result<DatabaseConnection> {
    Backend::of(url)?;
    if let Some(path) = sqlite_path(url)
        && !std::path::Path::new(path).exists()
    {
        return Err(AuditError::Connect {
            url: redact(url),
            message: "no such file".into(),
        });
    }
    connect(url, 1).await
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
            let path = sqlite_path(url).unwrap_or_default();
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
        assert_eq!(sqlite_path("sqlite:///a/b.db?mode=rwc"), Some("/a/b.db"));
        assert_eq!(sqlite_path("sqlite:rel.db"), Some("rel.db"));
        assert_eq!(sqlite_path("postgres://tw@db/x"), None);
    }
}
