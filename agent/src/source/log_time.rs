//! The zone the agent reads zone-less log timestamps in (RFC 3164's
//! `Dec  6 10:00:01`): the host's (`TZ`, else `/etc/localtime`, read from
//! the system's tzdb), or the one a source's `timezone` setting names.

use countywatch_config::config_file::{Problems, Spanned};
use jiff::tz::TimeZone;

/// The `timezone` value meaning the host's zone (also the default).
pub const LOCAL: &str = "local";

/// A `timezone` setting that names no zone the system's tzdb knows.
#[derive(Debug, thiserror::Error)]
#[error(
    "time zone {name:?} is not `local` or a zone of the system's tzdb (Asia/Shanghai, UTC): {source}"
)]
pub struct UnknownZone {
    /// The setting.
    pub name: String,
    /// What the tzdb lookup said.
    source: jiff::Error,
}

/// The zone a `timezone` setting names: `None` or `local` for the host's.
pub fn zone(setting: Option<&str>) -> Result<TimeZone, UnknownZone> {
    match setting {
        None | Some(LOCAL) => Ok(host_zone()),
        Some(name) => TimeZone::get(name).map_err(|source| UnknownZone {
            name: name.to_string(),
            source,
        }),
    }
}

/// The host's zone: `TZ` when set, else `/etc/localtime`; UTC (with a
/// warning) when neither gives one.
pub fn host_zone() -> TimeZone {
    match TimeZone::try_system() {
        Ok(zone) => zone,
        Err(error) => {
            tracing::warn!(%error, "cannot find the host's time zone (TZ, /etc/localtime); reading log times as UTC");
            TimeZone::UTC
        }
    }
}

/// The zone's name for log lines (`Asia/Shanghai`, or its offset when it
/// has no name).
pub fn name(zone: &TimeZone) -> String {
    match zone.iana_name() {
        Some(name) => name.to_string(),
        None => format!("{}", zone.to_offset(jiff::Timestamp::now())),
    }
}

/// A source's `timezone` must name a zone the system's tzdb knows.
pub fn validate_timezone(setting: Option<&Spanned<String>>, problems: &mut Problems) {
    if let Some(setting) = setting
        && let Err(error) = zone(Some(&setting.value))
    {
        problems.at(setting, error.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_tzdb_zones_or_the_hosts() {
        assert_eq!(
            zone(Some("Asia/Shanghai")).unwrap().iana_name(),
            Some("Asia/Shanghai")
        );
        assert!(zone(None).is_ok());
        assert!(zone(Some(LOCAL)).is_ok());
        let error = zone(Some("Mars/Olympus")).unwrap_err().to_string();
        assert!(error.contains("Mars/Olympus"), "{error}");
    }
}
