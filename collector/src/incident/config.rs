//! The `incidents:` section of the collector's configuration: retention,
//! reopening, sessions.

use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned, unspanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;

/// The least retention the law asks for without a recorded reason: China's
/// Cybersecurity Law (art. 21) requires network logs to be kept for no less
/// than six months.
pub const MINIMUM_RETENTION: Duration = Duration::from_secs(180 * 24 * 3600);

/// Incidents, their evidence, the audit trail and the web page's users.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// How long security events, closed incidents, expired
    /// active-response decisions and audit entries are kept. Less than 180
    /// days is refused unless
    /// `retention_override_reason` says why.
    pub retention: Spanned<PromDuration>,
    /// Why retention is shorter than 180 days (for instance a lab
    /// installation); recorded in the audit trail at every start.
    pub retention_override_reason: Option<String>,
    /// A detection that recurs within this time after its incident was
    /// resolved reopens that incident instead of opening a new one.
    pub reopen_within: PromDuration,
    /// How long a web session lasts after login.
    pub session_ttl: PromDuration,
    /// Sign an audit checkpoint after this many entries (and at least daily).
    pub checkpoint_every: u32,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            retention: unspanned(PromDuration(MINIMUM_RETENTION)),
            retention_override_reason: None,
            reopen_within: PromDuration(Duration::from_secs(24 * 3600)),
            session_ttl: PromDuration(Duration::from_secs(12 * 3600)),
            checkpoint_every: 256,
        }
    }
}

impl IncidentsConfig {
    /// Adds every problem of this section to `problems`.
    pub fn validate(&self, problems: &mut Problems) {
        let has_reason = self
            .retention_override_reason
            .as_deref()
            .is_some_and(|reason| !reason.trim().is_empty());
        if self.retention.value.get() < MINIMUM_RETENTION && !has_reason {
            problems.at(
                &self.retention,
                format!(
                    "incidents.retention {} is less than the 180 days the Cybersecurity Law asks \
                     for; set incidents.retention_override_reason to say why",
                    self.retention.value
                ),
            );
        }
        if self.retention.value.get().is_zero() {
            problems.at(&self.retention, "incidents.retention must be positive");
        }
        if self.checkpoint_every == 0 {
            problems.general("incidents.checkpoint_every must be at least 1");
        }
        if self.session_ttl.get().is_zero() {
            problems.general("incidents.session_ttl must be positive");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn problems(text: &str) -> String {
        let path = Path::new("collector.yaml");
        let config: Config = countywatch_config::config_file::parse(path, text).unwrap();
        match config.validate(path) {
            Ok(()) => String::new(),
            Err(problems) => problems.to_string(),
        }
    }

    #[test]
    fn retention_below_180_days_needs_a_reason() {
        let short = problems("incidents:\n  retention: 30d\n");
        assert!(short.contains("collector.yaml:2:14"), "{short}");
        assert!(short.contains("retention_override_reason"), "{short}");
        assert_eq!(
            problems("incidents:\n  retention: 30d\n  retention_override_reason: lab\n"),
            ""
        );
        assert_eq!(problems("incidents:\n  retention: 400d\n"), "");
    }
}
