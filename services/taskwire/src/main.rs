//! `taskwire`: the product's command. `taskwire up` runs the whole product in one process on
//! its embedded defaults; `run`, `ps`, `logs`, `stop`, `kill` and the rest are the client of a
//! running server.

mod audit_verify;
mod client;
mod cluster;
mod error;
mod migrate;
mod nats_cmd;
mod serve;
mod text;
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
    #[command(flatten)]
    conn: client::conn::ConnArgs,
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
    /// Run one service (gateway, executor, audit-writer, kill-broker, scheduler) in this
    /// process, as its own binary would.
    Serve(serve::ServeArgs),
    /// Make the NATS keys and server config of a deployment (`init`), and its streams,
    /// buckets and consumers (`setup`).
    Nats(nats_cmd::NatsArgs),
    #[command(flatten)]
    Client(Box<client::ClientCommand>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Client(_)) {
        quiet_on_closed_pipe();
    } else {
        taskwire_core::telemetry::init("info,async_nats=warn");
    }
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
        Command::Up(args) => runtime.block_on(up::run(cli.config, args)).map(|()| 0),
        Command::Token(args) => token::run(args).map(|()| 0),
        Command::Migrate(args) => runtime.block_on(migrate::run(cli.config, args)).map(|()| 0),
        Command::Nats(args) => runtime
            .block_on(nats_cmd::run(cli.config, args))
            .map(|()| 0),
        Command::Serve(args) => return serve::run(&runtime, args.service),
        Command::Client(mut cmd) => match cmd.take_local() {
            Some(local) => runtime.block_on(audit_verify::run(cli.config, local)),
            None => runtime.block_on(client::dispatch(*cmd, &cli.conn)),
        },
    };
    // A client blocked reading an abandoned prompt must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("taskwire: {e}");
            match e {
                error::CliError::Interrupted(_) => {
                    std::process::ExitCode::from(client::exit::INTERRUPTED)
                }
                _ => std::process::ExitCode::FAILURE,
            }
        }
    }
}

/// `taskwire ps | head` ends quietly when `head` has read enough, as Unix tools do: the
/// client takes the default action of SIGPIPE (Rust ignores it, which would make every later
/// print fail). Sockets are not affected (they are written with MSG_NOSIGNAL). A job being
/// followed keeps running, as after a detach.
fn quiet_on_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_DFL installs
    // no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
