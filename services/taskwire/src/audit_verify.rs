//! `taskwire audit verify`: walks the audit log's hash chains in the audit database itself
//! (not through a server) and reports the first broken link. It only reads: it never
//! migrates, repairs or creates anything.

use crate::error::CliError;
use std::path::PathBuf;
use taskwire_audit_writer::chain::{self, Verification};
use taskwire_audit_writer::{AuditConfig, db};
use taskwire_core::config::Settings;

/// The exit status when a link is broken (0: intact; 1: could not check, said on stderr).
pub const BROKEN: u8 = 3;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no audit entry was edited, deleted, inserted or reordered: recompute every
    /// entry's hash and link, chain by chain. Exits 0 when intact, 3 at a broken link.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The database (sqlite://PATH or postgres://USER@HOST/DB); default: [audit]
    /// database_url, else the SQLite file in the state dir.
    #[arg(long, visible_alias = "database", value_name = "URL")]
    database_url: Option<String>,
    /// State dir holding the default SQLite file.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Option<PathBuf>, cmd: AuditCommand) -> Result<u8, CliError> {
    let AuditCommand::Verify(args) = cmd;
    let url = match args.database_url {
        Some(u) => u,
        None => {
            let mut settings = Settings::load(config.as_deref())?;
            if let Some(dir) = args.state_dir {
                settings.state_dir = dir;
            }
            let audit: AuditConfig = settings.section("audit")?;
            audit.url(&settings.state_dir)
        }
    };
    let conn = db::connect_existing(&url).await?;
    let report = chain::verify(&conn).await;
    let _ = conn.close().await;
    let report = report?;
    let text = if args.json {
        serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::Usage(format!("cannot encode the report: {e}")))?
    } else {
        describe(&db::redact(&url), &report)
    };
    println!("{text}");
    Ok(if report.intact() { 0 } else { BROKEN })
}

/// The report for people.
fn describe(db: &str, r: &Verification) -> String {
    let mut out = match &r.broken {
        None => format!(
            "{db}: audit log intact: {} chain(s), {} entries checked",
            r.chains, r.rows_checked
        ),
        Some(b) => format!(
            "{db}: audit log BROKEN at {b}\n(checked {} entries in {} chain(s) before it)",
            r.rows_checked, r.chains
        ),
    };
    if r.legacy_rows > 0 {
        out.push_str(&format!(
            "\n{} entries stored before chaining are not covered",
            r.legacy_rows
        ));
    }
    out
}
