//! The `main` of every service binary: config from `--config` / `TASKWIRE_CONFIG` and the
//! environment, logging, and signals. SIGTERM, SIGINT or SIGUSR2 asks the service to stop
//! cleanly (an executor drains); a second signal exits at once. `taskwire up` uses the same
//! signal loop ([`stop_on_signals`]).

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
    main_on(&runtime, name, configure, service)
}

/// [`main`] on a runtime the caller made (and logging it set up): `taskwire serve`.
pub fn main_on<O, C, CE, F, Fut, E>(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    configure: C,
    service: F,
) -> ExitCode
where
    C: FnOnce(&Settings) -> Result<O, CE>,
    CE: std::fmt::Display,
    F: FnOnce(O, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
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
    runtime.block_on(async move {
        let shutdown = stop_on_signals(name, None);
        crate::memory::trim_regularly();
        match service(options, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The signals that ask for a clean stop: SIGTERM, SIGINT (Ctrl-C) and SIGUSR2 (Coyotes'
/// drain signal).
const STOP_SIGNALS: [SignalKind; 3] = [
    SignalKind::terminate(),
    SignalKind::interrupt(),
    SignalKind::user_defined2(),
];

/// The one signal loop of every service and of `taskwire up`: the first stop signal cancels
/// the returned token (and prints `note`, when given, as `name: note`); a second one exits the
/// process at once with status 1. Must be called inside the runtime.
pub fn stop_on_signals(name: &str, note: Option<&str>) -> CancellationToken {
    let shutdown = CancellationToken::new();
    let mut streams = Vec::new();
    for kind in STOP_SIGNALS {
        match signal(kind) {
            Ok(s) => streams.push(s),
            Err(e) => {
                eprintln!("{name}: cannot install signal handlers: {e}");
                std::process::exit(1);
            }
        }
    }
    let (name, note, token) = (name.to_string(), note.map(str::to_string), shutdown.clone());
    tokio::spawn(async move {
        for round in 0..2 {
            let any = futures::future::select_all(streams.iter_mut().map(|s| Box::pin(s.recv())));
            any.await;
            if round == 0 {
                if let Some(n) = &note {
                    eprintln!("{name}: {n}");
                }
                token.cancel();
            } else {
                eprintln!("{name}: second signal, exiting now");
                std::process::exit(1);
            }
        }
    });
    shutdown
}
