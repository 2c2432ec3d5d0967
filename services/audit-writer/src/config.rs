//! The `[audit]` section of the configuration.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// `sqlite://PATH` (embedded) or `postgres://USER@HOST/DB` (production). Unset: the SQLite
    /// file `audit.db` in the state dir.
    pub database_url: Option<String>,
    /// Most messages written in one transaction.
    pub batch_max: usize,
    /// Connections to PostgreSQL (SQLite uses its own small pool).
    pub max_connections: u32,
    /// Batches of one stream written at once on PostgreSQL, each in its own transaction
    /// (SQLite takes one writer at a time).
    pub parallel_batches: usize,
    /// Longest pause between retries while the database is unreachable.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub retry_max: Duration,
    pub retention: RetentionConfig,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            batch_max: 1000,
            max_connections: 8,
            parallel_batches: 3,
            retry_max: Duration::from_secs(5),
            retention: RetentionConfig::default(),
        }
    }
}

impl AuditConfig {
    /// The database URL, defaulting to `sqlite://<state_dir>/audit.db`.
    pub fn url(&self, state_dir: &Path) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", state_dir.join("audit.db").display()),
        }
    }
}

/// What the store prunes, and how often (the log cleaner). Unset ages keep rows forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Output chunks older than this are deleted.
    #[serde(with = "taskwire_core::units::opt_duration_str")]
    pub output_max_age: Option<Duration>,
    /// Job events older than this are deleted.
    #[serde(with = "taskwire_core::units::opt_duration_str")]
    pub events_max_age: Option<Duration>,
    /// Executions rows of jobs queued longer ago than this are deleted (default: kept).
    #[serde(with = "taskwire_core::units::opt_duration_str")]
    pub executions_max_age: Option<Duration>,
    /// Audit log entries older than this are deleted (default: kept).
    #[serde(with = "taskwire_core::units::opt_duration_str")]
    pub audit_max_age: Option<Duration>,
    /// How often pruning runs.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            output_max_age: Some(Duration::from_secs(30 * 86400)),
            events_max_age: Some(Duration::from_secs(90 * 86400)),
            executions_max_age: None,
            audit_max_age: None,
            interval: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_unset_means_keep() {
        let c: AuditConfig = toml::from_str(
            r#"
database_url = "postgres://taskwire@db/taskwire"
[retention]
output_max_age = "7d"
audit_max_age = "365d"
interval = "10m"
"#,
        )
        .unwrap();
        assert_eq!(
            c.retention.output_max_age,
            Some(Duration::from_secs(7 * 86400))
        );
        assert_eq!(c.retention.executions_max_age, None);
        assert_eq!(c.retention.interval, Duration::from_secs(600));
        assert_eq!(
            c.url(Path::new("/var/lib/taskwire")),
            "postgres://taskwire@db/taskwire"
        );
        assert_eq!(
            AuditConfig::default().url(Path::new("/var/lib/taskwire")),
            "sqlite:///var/lib/taskwire/audit.db"
        );
        assert!(toml::from_str::<AuditConfig>("batch = 3").is_err());
    }
}
