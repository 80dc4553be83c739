//! The `report:` section of the collector's configuration: how long the
//! history behind the county report is kept.

use std::time::Duration;

use countywatch_daemon::duration::PromDuration;
use serde::Deserialize;

/// `report:` in the collector configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// How long `history.db` keeps hourly availability, outages and its
    /// copy of incidents (default `400d`: a month and the same month a
    /// year before, after the incident store purged the incidents).
    pub retention: PromDuration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            retention: PromDuration(Duration::from_secs(400 * 86_400)),
        }
    }
}
