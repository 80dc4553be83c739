//! A probe's switch and schedule, the config every probe section shares,
//! and [`ProbeSection`], what the probe table asks of every section.
//! A leaf, so that probe files and `config.rs` can both name it without
//! importing each other.

use std::time::Duration;

use countywatch_config::config_file::Problems;
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

/// What the probe table needs of a config section: [`ProbeToggle`] for a
/// probe with nothing more to set, the probe's own struct otherwise.
pub trait ProbeSection {
    /// The enable flag and interval, as every probe has them.
    fn toggle(&self) -> ProbeToggle;

    /// Whether the section gives the probe anything to do: a probe that
    /// polls listed things (units, targets, devices) is not built without
    /// any.
    fn has_work(&self) -> bool {
        true
    }

    /// Whether the probe is built after every other one: a probe whose
    /// families may repeat another's (textfile) goes last, so that the
    /// collection drops its duplicate rather than the other probe's.
    fn runs_last(&self) -> bool {
        false
    }

    /// Adds the section's own problems to `problems`; the interval is
    /// checked for every section by the table.
    fn validate(&self, _probe_timeout: Duration, _problems: &mut Problems) {}
}

impl ProbeSection for ProbeToggle {
    fn toggle(&self) -> ProbeToggle {
        self.clone()
    }
}
