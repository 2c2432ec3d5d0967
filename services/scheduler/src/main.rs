//! `taskwire-scheduler`: fires schedules through the gateway, exactly once across replicas.

fn main() -> std::process::ExitCode {
    taskwire_core::service::main(
        "taskwire-scheduler",
        taskwire_scheduler::SchedulerOptions::from_settings,
        taskwire_scheduler::run,
    )
}
