//! The `[scheduler]` section of the configuration.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// How often each replica looks for due fires.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub tick: Duration,
    /// A fire found due later than this after its time counts as missed (no scheduler ran)
    /// and is handled by the schedule's misfire policy. Longer than a JetStream leader
    /// election (up to 9 s), so the loss of one node of a cluster delays fires, not skips them.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub misfire_grace: Duration,
    /// A fire claimed by a replica that has not finished it within this time is taken over
    /// by another replica (the job id is the same, so it still runs once).
    #[serde(with = "taskwire_core::units::duration_str")]
    pub claim_timeout: Duration,
    /// How long to wait for a gateway to answer a fire.
    #[serde(with = "taskwire_core::units::duration_str")]
    pub fire_timeout: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(250),
            misfire_grace: Duration::from_secs(15),
            claim_timeout: Duration::from_secs(10),
            fire_timeout: Duration::from_secs(10),
        }
    }
}
