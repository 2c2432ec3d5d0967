//! Logging setup for binaries: `TASKWIRE_LOG` (or `RUST_LOG`) selects what is printed, to
//! stderr, with ANSI colour only on a terminal.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing (tests call it freely).
pub fn init(default_filter: &str) {
    let filter = std::env::var("TASKWIRE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_filter.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
        .try_init();
}

/// For tests: logs only when `TEST_LOG` is set, so test output stays quiet by default, but
/// for a download cut short (rare, and when it happens under load its reason is the one thing
/// a test's failure cannot tell).
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init("info,taskwire=debug");
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(
                "off,taskwire_gateway::ops::output=warn,taskwire_gateway::feed::reader=warn",
            ))
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    }
}
