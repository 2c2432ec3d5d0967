//! `taskwire serve <service>`: one service of the product in this process, exactly as its own
//! binary (`taskwire-gateway`, ...) runs it: the same configuration, signals and exit codes.
//! One binary can so be every service of a deployment; `taskwire up --cluster` starts its
//! processes this way.

use std::process::ExitCode;

/// The services `taskwire serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    Gateway,
    Executor,
    AuditWriter,
    KillBroker,
    Scheduler,
}

impl Service {
    /// The name of its own binary, which its log lines and errors carry.
    pub fn binary(self) -> &'static str {
        match self {
            Service::Gateway => "taskwire-gateway",
            Service::Executor => "taskwire-executor",
            Service::AuditWriter => "taskwire-audit-writer",
            Service::KillBroker => "taskwire-kill-broker",
            Service::Scheduler => "taskwire-scheduler",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Which service to run.
    pub service: Service,
}

/// Runs `service` on `runtime` until a stop signal, with its own configuration.
pub fn run(runtime: &tokio::runtime::Runtime, service: Service) -> ExitCode {
    use taskwire_core::service::main_on;
    let name = service.binary();
    match service {
        Service::Gateway => main_on(
            runtime,
            name,
            taskwire_gateway::GatewayOptions::from_settings,
            taskwire_gateway::run,
        ),
        Service::Executor => main_on(
            runtime,
            name,
            taskwire_executor::ExecutorOptions::from_settings,
            taskwire_executor::run,
        ),
        Service::AuditWriter => main_on(
            runtime,
            name,
            taskwire_audit_writer::AuditWriterOptions::from_settings,
            taskwire_audit_writer::run,
        ),
        Service::KillBroker => main_on(
            runtime,
            name,
            taskwire_kill_broker::KillBrokerOptions::from_settings,
            taskwire_kill_broker::run,
        ),
        Service::Scheduler => main_on(
            runtime,
            name,
            taskwire_scheduler::SchedulerOptions::from_settings,
            taskwire_scheduler::run,
        ),
    }
}
