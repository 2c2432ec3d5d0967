//! The `main` of every service binary: config from `--config` / `TASKWIRE_CONFIG` and the
//! environment, logging, and signals. SIGTERM, SIGINT or SIGUSR2 asks the service to stop
//! cleanly (an executor drains); a second signal exits at once.

use crate::config::Settings;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Reads the options with `configure` (a failure exits 2), then runs `service` until a signal,
/// printing `name: <error>` and exiting 1 on failure.
pub fn main<O, C, CE, F, Fut, E>(name: &str, configure: C, service: F) -> ExitCode
where
    C: FnOnce(&Settings) -> Result<O, CE>,
    CE: std::fmt::Display,
    F: FnOnce(O, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    crate::telemetry::init("info,async_nats=warn");
    let config = std::env::args_os()
        .skip_while(|a| a != "--config")
        .nth(1)
        .or_else(|| std::env::var_os("TASKWIRE_CONFIG"))
        .map(PathBuf::from);
    let options = match Settings::load(config.as_deref()) {
        Ok(s) => match configure(&s) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = name.to_string();
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(name.clone(), shutdown.clone()));
        match service(options, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn signals(name: String, shutdown: CancellationToken) {
    let (Ok(mut term), Ok(mut int), Ok(mut usr2)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined2()),
    ) else {
        eprintln!("{name}: cannot install signal handlers");
        std::process::exit(1);
    };
    for round in 0..2 {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = usr2.recv() => {}
        }
        if round == 0 {
            shutdown.cancel();
        } else {
            eprintln!("{name}: second signal, exiting now");
            std::process::exit(1);
        }
    }
}
