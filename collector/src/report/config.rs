//! The `report:` section of the collector's configuration: how long the
//! history behind the county report is kept, and the optional monthly
//! email of last month's report.

use std::time::Duration;

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_config::duration::PromDuration;
use serde::Deserialize;

/// `report:` in the collector configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// How long `history.db` keeps hourly availability, outages and its
    /// copy of incidents (default `400d`: a month and the same month a
    /// year before, after the incident store purged the incidents).
    pub retention: PromDuration,
    /// Mail last month's report (HTML, attached) on the 1st of each month
    /// through a receiver's email settings. Unset: no mail.
    pub schedule: Option<ScheduleConfig>,
}

/// `report.schedule`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The `notify.receivers` entry whose `email_configs` (server, sender,
    /// recipients) the report is sent with.
    pub receiver: Spanned<String>,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            retention: PromDuration(Duration::from_secs(400 * 86_400)),
            schedule: None,
        }
    }
}

impl ReportConfig {
    /// The scheduled receiver must exist and send email.
    pub fn validate(
        &self,
        notify: &countywatch_notify::config::NotifyConfig,
        problems: &mut Problems,
    ) {
        let Some(schedule) = &self.schedule else {
            return;
        };
        let receiver = notify
            .receivers
            .iter()
            .find(|receiver| receiver.name.value == schedule.receiver.value);
        match receiver {
            None => problems.at(
                &schedule.receiver,
                format!(
                    "report.schedule.receiver: no receiver named {:?} in notify.receivers",
                    schedule.receiver.value
                ),
            ),
            Some(receiver) if receiver.email_configs.is_empty() => problems.at(
                &schedule.receiver,
                format!(
                    "report.schedule.receiver: {:?} has no email_configs to send the report with",
                    schedule.receiver.value
                ),
            ),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn problems_of(text: &str) -> String {
        let config: Config =
            countywatch_config::config_file::parse(Path::new("c.yaml"), text).unwrap();
        config
            .validate(Path::new("c.yaml"))
            .err()
            .map(|problems| problems.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn the_scheduled_receiver_must_exist_and_send_email() {
        let receivers = "notify:\n  route:\n    receiver: hook\n  receivers:\n  - name: hook\n    webhook_configs:\n    - url: http://127.0.0.1:1/\n";
        let missing = problems_of(&format!(
            "{receivers}report:\n  schedule:\n    receiver: boss\n"
        ));
        assert!(
            missing.contains("c.yaml:10:15: report.schedule.receiver: no receiver named \"boss\""),
            "{missing}"
        );
        let no_email = problems_of(&format!(
            "{receivers}report:\n  schedule:\n    receiver: hook\n"
        ));
        assert!(
            no_email.contains("\"hook\" has no email_configs"),
            "{no_email}"
        );
        assert_eq!(problems_of("report:\n  retention: 30d\n"), "");
    }
}
