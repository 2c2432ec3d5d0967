//! The command-line client of a taskwire server: every command talks to the gateway's public
//! API (`/api/v1` and its output stream) with the user's token, as the web console does.

pub mod api;
pub mod conn;
pub mod exit;
mod follow;
mod jobs;
mod run;
mod schedules;
mod sse;
mod table;
mod views;
mod ws;

use crate::error::CliError;
use conn::ConnArgs;

/// The client's commands.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Run a command and follow its output; exits with the job's exit code.
    Run(run::RunArgs),
    /// Running and queued jobs (--all for history).
    Ps(jobs::PsArgs),
    /// One job's record: parameters, argv, instance, timings, result, who ended it.
    Show {
        /// The job (its id or a unique prefix).
        job: String,
    },
    /// A job's output (-f to follow it live).
    Logs(jobs::LogsArgs),
    /// Stop a job gracefully (or cancel it while queued).
    Stop {
        /// The job (its id or a unique prefix).
        job: String,
    },
    /// Kill a job with its escalating signal ladder (or cancel it while queued).
    Kill {
        /// The job (its id or a unique prefix).
        job: String,
    },
    /// Delete a finished job's record and output.
    Rm {
        /// The job (its id or a unique prefix).
        job: String,
    },
    /// The commands I may run, their parameters, and where.
    Commands,
    /// The executor instances: GUID, host, channels, slots, jobs, memory, status.
    Instances,
    /// The audit log (who did what, and what was denied); `audit verify` checks its hash
    /// chains in the audit database itself.
    Audit(views::AuditArgs),
    /// Schedules: ls, add, show, rm, pause, resume, history.
    #[command(subcommand)]
    Schedule(schedules::ScheduleCommand),
    /// Who the token belongs to: user, roles, permissions.
    Whoami,
    /// Check a server URL and token, and save them for later commands (file mode 0600).
    Login,
}

impl ClientCommand {
    /// A command that is not a client of the server after all (`taskwire audit verify` reads
    /// the audit database itself), taken out to be run without a connection.
    pub fn take_local(&mut self) -> Option<crate::audit_verify::AuditCommand> {
        match self {
            ClientCommand::Audit(a) => a.local.take(),
            _ => None,
        }
    }
}

/// Runs a client command; returns the process exit status.
pub async fn dispatch(cmd: ClientCommand, conn_args: &ConnArgs) -> Result<u8, CliError> {
    if let ClientCommand::Login = cmd {
        return views::login(conn_args).await;
    }
    let api = api::Api::new(conn_args.resolve()?)?;
    match cmd {
        ClientCommand::Run(a) => run::run(&api, a).await,
        ClientCommand::Ps(a) => jobs::ps(&api, a).await,
        ClientCommand::Show { job } => jobs::show(&api, &job).await,
        ClientCommand::Logs(a) => jobs::logs(&api, a).await,
        ClientCommand::Stop { job } => jobs::signal(&api, &job, false).await,
        ClientCommand::Kill { job } => jobs::signal(&api, &job, true).await,
        ClientCommand::Rm { job } => jobs::rm(&api, &job).await,
        ClientCommand::Commands => views::commands(&api).await,
        ClientCommand::Instances => views::instances(&api).await,
        ClientCommand::Audit(a) => views::audit(&api, a).await,
        ClientCommand::Schedule(c) => schedules::run(&api, c).await,
        ClientCommand::Whoami => views::whoami(&api).await,
        ClientCommand::Login => views::login(conn_args).await,
    }
}
