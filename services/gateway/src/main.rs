//! `taskwire-gateway`: the HTTP, WebSocket and NATS API. SIGTERM or SIGINT stops it.

fn main() -> std::process::ExitCode {
    taskwire_core::service::main(
        "taskwire-gateway",
        taskwire_gateway::GatewayOptions::from_settings,
        taskwire_gateway::run,
    )
}
