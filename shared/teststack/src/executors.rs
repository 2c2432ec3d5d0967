//! An executor of a test: started in this process the way `taskwire up` starts one, with its
//! own state dir (so it keeps its GUID when started again there) and catalog file.

use std::path::{Path, PathBuf};
use std::time::Duration;
use taskwire_core::Namespace;
use taskwire_core::auth::roles::Role;
use taskwire_core::nats::Endpoint;
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

/// An executor about to start: its state dir (with its GUID drawn), catalog and config.
#[derive(Debug)]
pub struct ExecutorPlan {
    pub state_dir: PathBuf,
    pub catalog: PathBuf,
    pub guid: Uuid,
    pub config: ExecutorConfig,
}

impl ExecutorPlan {
    /// An executor named `name` under `root` with the catalog text `catalog`.
    pub fn new(
        root: &Path,
        name: &str,
        catalog: &str,
        tweak: impl FnOnce(&mut ExecutorConfig),
    ) -> Self {
        let state_dir = root.join(name);
        std::fs::create_dir_all(&state_dir)
            .unwrap_or_else(|e| panic!("cannot make {}: {e}", state_dir.display()));
        let catalog_path = state_dir.join("catalog.toml");
        std::fs::write(&catalog_path, catalog)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", catalog_path.display()));
        Self::at(&state_dir, &catalog_path, tweak)
    }

    /// An executor with state in `state_dir` and the catalog file `catalog` (heartbeats every
    /// 300 ms, so the registry notices it at once); `tweak` changes the rest of its
    /// configuration.
    pub fn at(state_dir: &Path, catalog: &Path, tweak: impl FnOnce(&mut ExecutorConfig)) -> Self {
        let mut config = ExecutorConfig {
            catalog: catalog.to_path_buf(),
            heartbeat_interval: Duration::from_millis(300),
            drain_timeout: Duration::from_secs(30),
            ..ExecutorConfig::default()
        };
        tweak(&mut config);
        let guid = taskwire_executor::identity::load_or_create(state_dir)
            .unwrap_or_else(|e| panic!("no instance GUID: {e}"));
        Self {
            state_dir: state_dir.to_path_buf(),
            catalog: catalog.to_path_buf(),
            guid,
            config,
        }
    }

    /// The executor's identity on NATS.
    pub fn role(&self) -> Role {
        Role::Executor {
            guid: self.guid,
            channels: self.config.channels.clone(),
        }
    }
}

impl TestExecutor {
    /// Starts an executor on `nats` with state in `state_dir` and `config`.
    pub async fn start(
        nats: Endpoint,
        ns: &Namespace,
        topology: &TopologyConfig,
        state_dir: &Path,
        config: ExecutorConfig,
    ) -> Self {
        let catalog = config.catalog.clone();
        let exec = Executor::start(ExecutorOptions {
            nats_url: nats.url.clone(),
            nats_credentials: nats.credentials.clone(),
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
            catalog,
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
