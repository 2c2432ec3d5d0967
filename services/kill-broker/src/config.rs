//! The `[kill_broker]` section of the configuration.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KillBrokerConfig {
    /// How long to wait for the instance to end the job's tree and answer.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub exec_timeout: Duration,
    /// A running job whose instance has been missing from the registry this long is `lost`.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub lost_after: Duration,
    /// How often the reaper looks for such jobs.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub reap_interval: Duration,
    /// A job still `queued` this long after it was submitted (no instance claimed it) is
    /// `lost`: nothing ran. Kept below the dispatch message's and the live record's lifetime
    /// (`[topology] dispatch_max_age`, `jobs_max_age`), after which it could never run anyway.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub unclaimed_after: Duration,
}

impl Default for KillBrokerConfig {
    fn default() -> Self {
        Self {
            exec_timeout: Duration::from_secs(30),
            lost_after: Duration::from_secs(30),
            reap_interval: Duration::from_secs(5),
            unclaimed_after: Duration::from_secs(86_400),
        }
    }
}
