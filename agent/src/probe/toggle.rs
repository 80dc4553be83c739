//! A probe's switch and schedule, the config every probe section shares.
//! A leaf, so that probe files and `config.rs` can both name it without
//! importing each other.

use countywatch_config::duration::PromDuration;
use serde::Deserialize;

/// A probe's switch and schedule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeToggle {
    /// Whether the probe runs.
    pub enabled: bool,
    /// How often the probe runs; between runs each batch repeats its last
    /// figures. Defaults to the agent's `interval` (every collection).
    pub interval: Option<PromDuration>,
}

impl Default for ProbeToggle {
    fn default() -> Self {
        ProbeToggle {
            enabled: true,
            interval: None,
        }
    }
}
