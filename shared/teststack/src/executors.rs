//! An executor of a test: started in this process the way `taskwire up` starts one, with its
//! own state dir (so it keeps its GUID when started again there) and catalog file.

use std::path::{Path, PathBuf};
use std::time::Duration;
use taskwire_core::Namespace;
use taskwire_core::topology::TopologyConfig;
use taskwire_executor::{Executor, ExecutorConfig, ExecutorOptions};
use uuid::Uuid;

/// A started executor; [`TestExecutor::drain`] stops it as SIGTERM would.
#[derive(Debug)]
pub struct TestExecutor {
    pub exec: Option<Executor>,
    pub guid: Uuid,
    pub state_dir: PathBuf,
    pub catalog: PathBuf,
}

impl TestExecutor {
    /// Starts an executor on `nats_url` with state in `state_dir` and the catalog file
    /// `catalog` (heartbeats every 300 ms, so the registry notices it at once); `tweak`
    /// changes the rest of its configuration.
    pub async fn start(
        nats_url: &str,
        ns: &Namespace,
        topology: &TopologyConfig,
        state_dir: &Path,
        catalog: &Path,
        tweak: impl FnOnce(&mut ExecutorConfig),
    ) -> Self {
        let mut config = ExecutorConfig {
            catalog: catalog.to_path_buf(),
            heartbeat_interval: Duration::from_millis(300),
            drain_timeout: Duration::from_secs(30),
            ..ExecutorConfig::default()
        };
        tweak(&mut config);
        let exec = Executor::start(ExecutorOptions {
            nats_url: nats_url.to_string(),
            namespace: ns.clone(),
            state_dir: state_dir.to_path_buf(),
            topology: topology.clone(),
            config,
        })
        .await
        .unwrap_or_else(|e| panic!("the test executor did not start: {e}"));
        Self {
            guid: exec.guid(),
            exec: Some(exec),
            state_dir: state_dir.to_path_buf(),
            catalog: catalog.to_path_buf(),
        }
    }

    /// Drains it: no new jobs, running ones finish, then it stops.
    pub async fn drain(&mut self) {
        if let Some(e) = self.exec.take() {
            e.drain()
                .await
                .unwrap_or_else(|e| panic!("the test executor did not drain: {e}"));
        }
    }
}

impl Drop for TestExecutor {
    fn drop(&mut self) {
        // Dropping a started executor without drain leaves its tasks to the runtime, which
        // ends with the test.
        let _ = self.exec.take();
    }
}
