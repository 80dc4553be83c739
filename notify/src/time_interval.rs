//! Alertmanager's `time_intervals`: times of day, weekdays, days of the
//! month, months and years, read in a location, for `mute_time_intervals`
//! (working hours, holidays) and `active_time_intervals`. The config
//! shape ([`TimeIntervalConfig`]) lives here with what reads it.
//!
//! Locations are read as Alertmanager reads them: `UTC` (the default),
//! `Local` (the host's zone) or any IANA zone name, daylight saving
//! included, from the time-zone database bundled with jiff (so a host
//! without tzdata reads zones the same way). A fixed offset such as
//! `+08:00` is also accepted, as countywatch always has. Ranges are
//! validated as Alertmanager validates them: a reversed weekday, month or
//! year range, or a day-of-month range that is always empty, is refused.

use std::collections::HashMap;

use countywatch_config::config_file::Spanned;
use jiff::tz::{Offset, TimeZone};
use serde::Deserialize;

/// A named set of time intervals.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    /// The name routes refer to.
    pub name: Spanned<String>,
    /// The intervals; the set contains an instant when any of them does.
    pub time_intervals: Vec<TimeIntervalSpec>,
}

/// One interval in Alertmanager's form. An empty field means "any".
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeIntervalSpec {
    /// Times of day, `start_time` inclusive, `end_time` exclusive, `HH:MM`.
    pub times: Vec<TimeRangeConfig>,
    /// Days of the week or ranges: `monday`, `monday:friday`.
    pub weekdays: Vec<Spanned<String>>,
    /// Days of the month or ranges; negative counts from the end: `1:5`, `-1`.
    pub days_of_month: Vec<Spanned<String>>,
    /// Months by name or number, or ranges: `january:march`, `10`.
    pub months: Vec<Spanned<String>>,
    /// Years or ranges: `2026`, `2026:2027`.
    pub years: Vec<Spanned<String>>,
    /// Where the clock is read: `UTC` (default), `Local` (the host's zone),
    /// an IANA zone such as `Asia/Shanghai` or `Europe/Berlin` (daylight
    /// saving followed), or a fixed offset like `+08:00`.
    pub location: Option<Spanned<String>>,
}

/// A time-of-day range.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeConfig {
    /// Start, `HH:MM`, inclusive.
    pub start_time: Spanned<String>,
    /// End, `HH:MM`, exclusive; `24:00` is the end of the day.
    pub end_time: Spanned<String>,
}

/// One compiled interval; every non-empty list must contain the instant.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The zone the clock is read in.
    zone: TimeZone,
}

/// Why an interval of the config cannot be compiled, at the offending
/// value; the texts are Alertmanager's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("time interval: {problem}")]
pub struct IntervalError {
    /// The offending value, with its position in the file.
    pub value: Spanned<String>,
    /// What is wrong with it.
    pub problem: IntervalProblem,
}

/// What is wrong with one value of a time interval.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntervalProblem {
    /// A time range whose start is not before its end.
    #[error("start time cannot be equal or greater than end time")]
    TimeOrder,
    /// A weekday range whose end is before its start.
    #[error("start day cannot be before end day")]
    WeekdayOrder,
    /// A day-of-month range from a negative day to a positive one.
    #[error("end day must be negative if start day is negative")]
    NegativeStartDay,
    /// A day-of-month range empty in every month.
    #[error("end day {end} is always before start day {start}")]
    DayOrder {
        /// The range's start as written.
        start: i32,
        /// The range's end as written.
        end: i32,
    },
    /// A month range whose end is before its start.
    #[error("end month is before start month")]
    MonthOrder,
    /// A year range whose end is before its start.
    #[error("end year is before start year")]
    YearOrder,
    /// A location that is no zone.
    #[error(
        "unknown location {location:?}; use UTC, Local, an IANA zone such as Asia/Shanghai or Europe/Berlin, or an offset like +08:00"
    )]
    UnknownLocation {
        /// The location as written.
        location: String,
    },
    /// A time that is not `HH:MM` from 00:00 to 24:00.
    #[error("{text:?} is not a time of day like 09:00")]
    TimeOfDay {
        /// The time as written.
        text: String,
    },
    /// A range whose ends are not names or numbers of the right kind.
    #[error("cannot read {text:?}")]
    Unreadable {
        /// The range as written.
        text: String,
    },
}

/// The error `problem` at `value`.
fn at(value: &Spanned<String>, problem: IntervalProblem) -> IntervalError {
    IntervalError {
        value: value.clone(),
        problem,
    }
}

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
    pub fn build(spec: &TimeIntervalSpec) -> Result<Interval, IntervalError> {
        let mut interval = Interval {
            times: Vec::new(),
            weekdays: Vec::new(),
            days_of_month: Vec::new(),
            months: Vec::new(),
            years: Vec::new(),
            zone: TimeZone::UTC,
        };
        for range in &spec.times {
            let start = minute_of_day(&range.start_time)?;
            let end = minute_of_day(&range.end_time)?;
            if start >= end {
                return Err(at(&range.end_time, IntervalProblem::TimeOrder));
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
            ordered(text, a, b, IntervalProblem::WeekdayOrder)?;
            interval.weekdays.push((a, b));
        }
        for text in &spec.days_of_month {
            let (a, b) = range_of(text, |part| {
                part.parse::<i32>()
                    .ok()
                    .filter(|day| (1..=31).contains(&day.abs()))
            })?;
            if a < 0 && b > 0 {
                return Err(at(text, IntervalProblem::NegativeStartDay));
            }
            // As Alertmanager: refuse ranges empty in every month, counting
            // negative days from a 28-day month.
            let from_28 = |day: i32| if day < 0 { 28 + day } else { day };
            ordered(
                text,
                from_28(a),
                from_28(b),
                IntervalProblem::DayOrder { start: a, end: b },
            )?;
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
            ordered(text, a, b, IntervalProblem::MonthOrder)?;
            interval.months.push((a, b));
        }
        for text in &spec.years {
            let (a, b) = range_of(text, |part| {
                part.parse::<i32>().ok().filter(|year| *year > 0)
            })?;
            ordered(text, a, b, IntervalProblem::YearOrder)?;
            interval.years.push((a, b));
        }
        if let Some(location) = &spec.location {
            interval.zone = parse_location(&location.value).ok_or_else(|| {
                let problem = IntervalProblem::UnknownLocation {
                    location: location.value.clone(),
                };
                at(location, problem)
            })?;
        }
        Ok(interval)
    }

    /// Whether the instant (Unix milliseconds) is inside the interval, read
    /// on the wall clock of the interval's zone.
    pub fn contains(&self, ms: i64) -> bool {
        let Ok(instant) = jiff::Timestamp::from_millisecond(ms) else {
            return false;
        };
        let time = instant.to_zoned(self.zone.clone()).datetime();
        let minute = u32::try_from(i32::from(time.hour()) * 60 + i32::from(time.minute()))
            .unwrap_or(u32::MAX);
        let weekday = u8::try_from(time.weekday().to_sunday_zero_offset()).unwrap_or(u8::MAX);
        let month = u8::try_from(time.month()).unwrap_or(u8::MAX);
        let day = i32::from(time.day());
        let days_in_month = i32::from(time.days_in_month());
        let year = i32::from(time.year());
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
                    .any(|(a, b)| day_in_range(*a, *b, day, days_in_month)))
            && (self.months.is_empty()
                || self.months.iter().any(|(a, b)| (*a..=*b).contains(&month)))
            && (self.years.is_empty() || self.years.iter().any(|(a, b)| (*a..=*b).contains(&year)))
    }
}

/// Alertmanager's day-of-month test: negative days count from the month's
/// end, a range starting after the month's last day matches nothing, and
/// the end is clamped to the month.
fn day_in_range(begin: i32, end: i32, day: i32, days_in_month: i32) -> bool {
    let resolve = |value: i32| {
        if value < 0 {
            days_in_month + value + 1
        } else {
            value
        }
    };
    let begin = resolve(begin);
    if begin > days_in_month {
        return false;
    }
    let begin = begin.clamp(-days_in_month, days_in_month);
    let end = resolve(end).clamp(-days_in_month, days_in_month);
    (begin..=end).contains(&day)
}

/// Refuses a range whose end comes before its start.
fn ordered<T: PartialOrd>(
    text: &Spanned<String>,
    start: T,
    end: T,
    problem: IntervalProblem,
) -> Result<(), IntervalError> {
    if start > end {
        return Err(at(text, problem));
    }
    Ok(())
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

fn minute_of_day(text: &Spanned<String>) -> Result<u32, IntervalError> {
    let fail = || {
        let problem = IntervalProblem::TimeOfDay {
            text: text.value.clone(),
        };
        at(text, problem)
    };
    // Alertmanager's form: two-digit hours and minutes, 00:00 to 24:00.
    let (hours, minutes) = text.value.split_once(':').ok_or_else(fail)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(fail());
    }
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
) -> Result<(T, T), IntervalError> {
    let fail = || {
        let problem = IntervalProblem::Unreadable {
            text: text.value.clone(),
        };
        at(text, problem)
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

fn parse_location(text: &str) -> Option<TimeZone> {
    match text {
        "" | "UTC" => return Some(TimeZone::UTC),
        // Alertmanager's `Local` is the host's zone.
        "Local" => return Some(TimeZone::system()),
        _ => {}
    }
    if let Some(sign) = match text.as_bytes().first()? {
        b'+' => Some(1),
        b'-' => Some(-1),
        _ => None,
    } {
        let (hours, minutes) = text[1..].split_once(':')?;
        let hours: i32 = hours.parse().ok()?;
        let minutes: i32 = minutes.parse().ok()?;
        if hours > 14 || minutes >= 60 {
            return None;
        }
        let offset = Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()?;
        return Some(TimeZone::fixed(offset));
    }
    TimeZone::get(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::parse_rfc3339;

    fn interval(yaml: &str) -> Interval {
        let spec: TimeIntervalSpec =
            countywatch_config::config_file::parse(std::path::Path::new("t.yaml"), yaml).unwrap();
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
            "location: Mars/Olympus\n",
            "months: [\"13\"]\n",
            "weekdays: [\"friday:monday\"]\n",
            "months: [\"march:january\"]\n",
            "years: [\"2027:2026\"]\n",
            "days_of_month: [\"-1:5\"]\n",
            "days_of_month: [\"10:2\"]\n",
            "days_of_month: [\"0\"]\n",
            "times:\n- start_time: \"9:00\"\n  end_time: \"17:00\"\n",
        ] {
            let spec: TimeIntervalSpec =
                countywatch_config::config_file::parse(std::path::Path::new("t.yaml"), yaml)
                    .unwrap();
            assert!(Interval::build(&spec).is_err(), "{yaml}");
        }
    }

    #[test]
    fn daylight_saving_zones_follow_the_wall_clock() {
        let berlin = interval(
            "times:\n- start_time: \"09:00\"\n  end_time: \"17:00\"\nlocation: Europe/Berlin\n",
        );
        // Summer (CEST, UTC+2): 07:00 UTC is 09:00 in Berlin.
        assert!(berlin.contains(at("2026-07-01T07:00:00Z")));
        assert!(!berlin.contains(at("2026-07-01T06:59:59Z")));
        // Winter (CET, UTC+1): 07:00 UTC is 08:00 in Berlin.
        assert!(!berlin.contains(at("2026-01-15T07:00:00Z")));
        assert!(berlin.contains(at("2026-01-15T08:00:00Z")));
        let new_york = interval("weekdays: [sunday]\nlocation: America/New_York\n");
        // 2026-03-08 03:30 UTC is still Saturday evening in New York.
        assert!(!new_york.contains(at("2026-03-08T03:30:00Z")));
        assert!(new_york.contains(at("2026-03-08T12:00:00Z")));
    }

    #[test]
    fn local_is_the_hosts_zone() {
        let local =
            interval("times:\n- start_time: \"00:00\"\n  end_time: \"12:00\"\nlocation: Local\n");
        let instant = at("2026-06-01T10:00:00Z");
        let hour = jiff::Timestamp::from_millisecond(instant)
            .unwrap()
            .to_zoned(TimeZone::system())
            .hour();
        assert_eq!(local.contains(instant), hour < 12);
    }

    #[test]
    fn days_of_month_as_alertmanager_reads_them() {
        // A range past the month's end matches nothing that month; an end
        // past it is clamped.
        let late = interval("days_of_month: [\"30:31\"]\n");
        assert!(!late.contains(at("2026-02-28T12:00:00Z")));
        assert!(late.contains(at("2026-04-30T12:00:00Z")));
        let last_week = interval("days_of_month: [\"-7:-1\"]\n");
        assert!(last_week.contains(at("2026-02-22T12:00:00Z")));
        assert!(!last_week.contains(at("2026-02-21T12:00:00Z")));
    }
}
