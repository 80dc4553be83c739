//! Alertmanager's `time_intervals`: times of day, weekdays, days of the
//! month, months and years, read in a location, for `mute_time_intervals`
//! (working hours, holidays) and `active_time_intervals`.
//!
//! Locations are fixed offsets. We carry no time-zone database: `UTC`,
//! `Local` is refused (a server's zone should not change alert routing),
//! `+08:00`-style offsets work, and the named zones in [`NAMED_ZONES`] that
//! have no daylight saving (China's among them) map to their offset.

use std::collections::HashMap;

use countywatch_daemon::config_file::Spanned;

use crate::notify::config::{TimeIntervalConfig, TimeIntervalSpec};

/// Zones without daylight saving that we accept by name, with their offset
/// in seconds east of UTC.
pub const NAMED_ZONES: &[(&str, i32)] = &[
    ("UTC", 0),
    ("Etc/UTC", 0),
    ("Asia/Shanghai", 8 * 3600),
    ("Asia/Chongqing", 8 * 3600),
    ("Asia/Harbin", 8 * 3600),
    ("Asia/Urumqi", 6 * 3600),
    ("Asia/Hong_Kong", 8 * 3600),
    ("Asia/Macau", 8 * 3600),
    ("Asia/Taipei", 8 * 3600),
    ("Asia/Singapore", 8 * 3600),
    ("Asia/Tokyo", 9 * 3600),
    ("PRC", 8 * 3600),
];

/// One compiled interval; every non-empty list must contain the instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interval {
    /// Minute-of-day ranges, start inclusive, end exclusive.
    times: Vec<(u32, u32)>,
    /// Weekday ranges, 0 = Sunday.
    weekdays: Vec<(u8, u8)>,
    /// Day-of-month ranges; negative counts from the month's end.
    days_of_month: Vec<(i32, i32)>,
    /// Month ranges, 1 = January.
    months: Vec<(u8, u8)>,
    /// Year ranges.
    years: Vec<(i32, i32)>,
    /// Seconds east of UTC of the location.
    offset_seconds: i32,
}

/// Where a problem is: the offending value, when it has a position.
type BuildError = (Option<Spanned<String>>, String);

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl Interval {
    /// Compiles one interval from its config.
    pub fn build(spec: &TimeIntervalSpec) -> Result<Interval, BuildError> {
        let mut interval = Interval::default();
        for range in &spec.times {
            let start = minute_of_day(&range.start_time)?;
            let end = minute_of_day(&range.end_time)?;
            if start >= end {
                return Err((
                    Some(range.end_time.clone()),
                    "time interval: end_time must be after start_time".to_string(),
                ));
            }
            interval.times.push((start, end));
        }
        for text in &spec.weekdays {
            let (a, b) = range_of(text, |part| {
                WEEKDAYS
                    .iter()
                    .position(|name| *name == part.to_ascii_lowercase())
                    .and_then(|index| u8::try_from(index).ok())
            })?;
            interval.weekdays.push((a, b));
        }
        for text in &spec.days_of_month {
            let (a, b) = range_of(text, |part| {
                part.parse::<i32>()
                    .ok()
                    .filter(|day| (1..=31).contains(&day.abs()))
            })?;
            interval.days_of_month.push((a, b));
        }
        for text in &spec.months {
            let (a, b) = range_of(text, |part| {
                MONTHS
                    .iter()
                    .position(|name| *name == part.to_ascii_lowercase())
                    .and_then(|index| u8::try_from(index + 1).ok())
                    .or_else(|| {
                        part.parse::<u8>()
                            .ok()
                            .filter(|month| (1..=12).contains(month))
                    })
            })?;
            interval.months.push((a, b));
        }
        for text in &spec.years {
            let (a, b) = range_of(text, |part| {
                part.parse::<i32>().ok().filter(|year| *year > 0)
            })?;
            interval.years.push((a, b));
        }
        if let Some(location) = &spec.location {
            interval.offset_seconds = parse_location(&location.value).ok_or_else(|| {
                (
                    Some(location.clone()),
                    format!(
                        "time interval: unsupported location {:?}; use UTC, an offset like +08:00, \
                             or a zone without daylight saving such as Asia/Shanghai",
                        location.value
                    ),
                )
            })?;
        }
        Ok(interval)
    }

    /// Whether the instant (Unix milliseconds) is inside the interval.
    pub fn contains(&self, ms: i64) -> bool {
        let seconds = ms.div_euclid(1000) + i64::from(self.offset_seconds);
        let Ok(time) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
            return false;
        };
        let minute = u32::from(time.hour()) * 60 + u32::from(time.minute());
        let weekday = time.weekday().number_days_from_sunday();
        let month = u8::from(time.month());
        let day = i32::from(time.day());
        let days_in_month = i32::from(time.month().length(time.year()));
        let year = time.year();
        let resolve_day = |day: i32| {
            if day < 0 {
                days_in_month + 1 + day
            } else {
                day
            }
        };
        (self.times.is_empty() || self.times.iter().any(|(a, b)| (*a..*b).contains(&minute)))
            && (self.weekdays.is_empty()
                || self
                    .weekdays
                    .iter()
                    .any(|(a, b)| (*a..=*b).contains(&weekday)))
            && (self.days_of_month.is_empty()
                || self
                    .days_of_month
                    .iter()
                    .any(|(a, b)| (resolve_day(*a)..=resolve_day(*b)).contains(&day)))
            && (self.months.is_empty()
                || self.months.iter().any(|(a, b)| (*a..=*b).contains(&month)))
            && (self.years.is_empty() || self.years.iter().any(|(a, b)| (*a..=*b).contains(&year)))
    }
}

/// Every named interval set of the config.
#[derive(Clone, Debug, Default)]
pub struct TimeIntervals {
    /// Name to its intervals.
    by_name: HashMap<String, Vec<Interval>>,
}

impl TimeIntervals {
    /// Compiles the config's intervals (validated before, so errors are skipped).
    pub fn build(configs: &[TimeIntervalConfig]) -> TimeIntervals {
        let by_name = configs
            .iter()
            .map(|config| {
                let intervals = config
                    .time_intervals
                    .iter()
                    .filter_map(|spec| Interval::build(spec).ok())
                    .collect();
                (config.name.value.clone(), intervals)
            })
            .collect();
        TimeIntervals { by_name }
    }

    /// Whether the named set contains the instant; an unknown name never does.
    pub fn contains(&self, name: &str, ms: i64) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|intervals| intervals.iter().any(|interval| interval.contains(ms)))
    }
}

fn minute_of_day(text: &Spanned<String>) -> Result<u32, BuildError> {
    let fail = || {
        (
            Some(text.clone()),
            format!(
                "time interval: {:?} is not a time of day like 09:00",
                text.value
            ),
        )
    };
    let (hours, minutes) = text.value.split_once(':').ok_or_else(fail)?;
    let hours: u32 = hours.parse().map_err(|_| fail())?;
    let minutes: u32 = minutes.parse().map_err(|_| fail())?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes != 0) {
        return Err(fail());
    }
    Ok(hours * 60 + minutes)
}

fn range_of<T: PartialOrd + Copy>(
    text: &Spanned<String>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<(T, T), BuildError> {
    let fail = || {
        (
            Some(text.clone()),
            format!("time interval: cannot read {:?}", text.value),
        )
    };
    let value = text.value.trim();
    // A negative day alone ("-1") must not be read as an empty range start.
    let (start, end) = match value.get(1..).and_then(|rest| rest.find(':')) {
        Some(index) => (&value[..=index], &value[index + 2..]),
        None => (value, value),
    };
    let start = parse(start.trim()).ok_or_else(fail)?;
    let end = parse(end.trim()).ok_or_else(fail)?;
    Ok((start, end))
}

fn parse_location(text: &str) -> Option<i32> {
    if let Some((_, offset)) = NAMED_ZONES.iter().find(|(name, _)| *name == text) {
        return Some(*offset);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 14 || minutes >= 60 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::parse_rfc3339;

    fn interval(yaml: &str) -> Interval {
        let spec: TimeIntervalSpec =
            countywatch_daemon::config_file::parse(std::path::Path::new("t.yaml"), yaml).unwrap();
        Interval::build(&spec).unwrap()
    }

    fn at(text: &str) -> i64 {
        parse_rfc3339(text).unwrap()
    }

    #[test]
    fn working_hours_in_beijing() {
        let hours = interval(
            "times:\n- start_time: \"09:00\"\n  end_time: \"17:30\"\nweekdays: [\"monday:friday\"]\nlocation: Asia/Shanghai\n",
        );
        // 2026-11-27 is a Friday; 01:00 UTC is 09:00 in Beijing.
        assert!(hours.contains(at("2026-11-27T01:00:00Z")));
        assert!(!hours.contains(at("2026-11-27T00:59:59Z")));
        assert!(hours.contains(at("2026-11-27T09:29:59Z")));
        assert!(!hours.contains(at("2026-11-27T09:30:00Z")));
        // Saturday morning in Beijing.
        assert!(!hours.contains(at("2026-11-28T02:00:00Z")));
    }

    #[test]
    fn holidays_and_last_days() {
        let national_day =
            interval("months: [october]\ndays_of_month: [\"1:7\"]\nyears: [\"2026:2027\"]\n");
        assert!(national_day.contains(at("2026-10-03T12:00:00Z")));
        assert!(!national_day.contains(at("2026-10-08T12:00:00Z")));
        assert!(!national_day.contains(at("2028-10-03T12:00:00Z")));
        let last_day = interval("days_of_month: [\"-1\"]\n");
        assert!(last_day.contains(at("2026-02-28T12:00:00Z")));
        assert!(!last_day.contains(at("2026-02-27T12:00:00Z")));
        assert!(last_day.contains(at("2028-02-29T12:00:00Z")));
    }

    #[test]
    fn refusals() {
        for yaml in [
            "weekdays: [funday]\n",
            "times:\n- start_time: \"17:00\"\n  end_time: \"09:00\"\n",
            "location: Europe/Berlin\n",
            "months: [\"13\"]\n",
        ] {
            let spec: TimeIntervalSpec =
                countywatch_daemon::config_file::parse(std::path::Path::new("t.yaml"), yaml)
                    .unwrap();
            assert!(Interval::build(&spec).is_err(), "{yaml}");
        }
    }
}
