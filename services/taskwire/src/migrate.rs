//! `taskwire migrate`: brings the audit database's schema up to date (the audit writer also
//! does this at every start) and says what it applied.

use crate::error::CliError;
use std::path::PathBuf;
use taskwire_audit_writer::db;
use taskwire_core::config::Settings;
use taskwire_migrations::{Migrator, MigratorTrait};

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The database (sqlite://PATH or postgres://USER@HOST/DB); default: [audit]
    /// database_url, else the SQLite file in the state dir.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// State dir holding the default SQLite file.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

pub async fn run(config: Option<PathBuf>, args: MigrateArgs) -> Result<(), CliError> {
    let mut settings = Settings::load(config.as_deref())?;
    if let Some(dir) = args.state_dir {
        settings.state_dir = dir;
    }
    let url = match args.database_url {
        Some(u) => u,
        None => taskwire_audit_writer::AuditWriterOptions::from_settings(&settings)?.database_url(),
    };
    let conn = db::connect(&url, 1).await?;
    let pending = Migrator::get_pending_migrations(&conn)
        .await
        .map_err(|e| CliError::Usage(format!("cannot read the schema version: {e}")))?;
    db::migrate(&conn).await?;
    let _ = conn.close().await;
    if pending.is_empty() {
        println!("{}: schema is up to date", db::redact(&url));
    } else {
        println!(
            "{}: applied {} migration(s):",
            db::redact(&url),
            pending.len()
        );
        for m in pending {
            println!("  {}", m.name());
        }
    }
    Ok(())
}
