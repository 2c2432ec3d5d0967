//! `taskwire-executor`: one executor instance. SIGTERM, SIGINT or SIGUSR2 drains it (running
//! jobs finish, up to the drain timeout); a second signal exits at once.

fn main() -> std::process::ExitCode {
    taskwire_core::service::main(
        "taskwire-executor",
        taskwire_executor::ExecutorOptions::from_settings,
        taskwire_executor::run,
    )
}
