//! A private nats-server per test.

use taskwire_core::nats_server::ChildServer;

/// A running nats-server child with JetStream, bound to 127.0.0.1, its store in a temporary
/// directory removed on drop.
#[derive(Debug)]
pub struct NatsServer {
    // Field order matters: the server is killed before its directory is removed.
    server: ChildServer,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server on a free port. Panics with an install hint when no nats-server 2.11+
    /// can be found: a test cannot run without one.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server on a free port with the configuration file `config` (accounts, users,
    /// permissions).
    pub fn start_with(config: Option<&std::path::Path>) -> Self {
        let root = crate::workspace_root();
        let bin = taskwire_core::nats_server::find(&[&root])
            .unwrap_or_else(|e| panic!("taskwire test kit: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("tw-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a nats store dir: {e}"));
        let server = ChildServer::start_with(&bin, dir.path(), None, config)
            .unwrap_or_else(|e| panic!("taskwire test kit: {e}"));
        Self { server, _dir: dir }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The server's log file.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.server.log_path()
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Reads the configuration file again (users and permissions).
    pub fn reload(&self) {
        self.server
            .reload()
            .unwrap_or_else(|e| panic!("nats-server did not reload: {e}"));
    }

    /// Stops the server abruptly (SIGKILL), as a crash would. The store is kept.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.server
            .restart()
            .unwrap_or_else(|e| panic!("nats-server did not restart: {e}"));
    }
}
