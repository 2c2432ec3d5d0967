//! `taskwire-kill-broker`: routes stop and kill, cancels queued jobs, marks lost jobs.

fn main() -> std::process::ExitCode {
    taskwire_core::service::main(
        "taskwire-kill-broker",
        taskwire_kill_broker::KillBrokerOptions::from_settings,
        taskwire_kill_broker::run,
    )
}
