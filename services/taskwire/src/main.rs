//! `taskwire`: the product's command. `taskwire up` runs the whole product in one process on
//! its embedded defaults.

mod error;
mod migrate;
mod token;
mod up;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "taskwire",
    version,
    about = "Run allow-listed commands on a fleet of servers and watch them live"
)]
struct Cli {
    /// Configuration file (TOML); TASKWIRE_ environment variables override it.
    #[arg(long, global = true, env = "TASKWIRE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start every service in this process, with a private nats-server unless
    /// TASKWIRE_NATS_URL is set. Ctrl-C stops everything cleanly.
    Up(up::UpArgs),
    /// Create an API token and print the configuration lines that grant it.
    Token(token::TokenArgs),
    /// Create or update the audit database's tables (SQLite or PostgreSQL).
    Migrate(migrate::MigrateArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    taskwire_core::telemetry::init("info,async_nats=warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("taskwire: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Up(args) => runtime.block_on(up::run(cli.config, args)),
        Command::Token(args) => token::run(args),
        Command::Migrate(args) => runtime.block_on(migrate::run(cli.config, args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskwire: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
