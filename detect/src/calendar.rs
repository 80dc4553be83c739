//! Working hours: which instants are inside the organisation's working
//! time, for `working_hours:` and `time_of_day:` conditions.
//!
//! Time zones are IANA names looked up in the tz database through `jiff`
//! (the collector compiles the database in), so zones with daylight saving
//! (`Europe/Berlin`) are right all year; a fixed offset (`+08:00`) works
//! too. The default is Asia/Shanghai. Public holidays and China's make-up
//! working days (调休) are lists of dates.

use std::collections::HashSet;

use jiff::tz::{Offset, TimeZone};
use serde::{Deserialize, Serialize};

/// The calendar as written in configuration and test files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// An IANA time zone (`Asia/Shanghai`, `Europe/Berlin`) or a fixed
    /// offset (`+08:00`, `-05:30`).
    pub timezone: String,
    /// Working weekdays (`mon` .. `sun`).
    pub workdays: Vec<String>,
    /// Start of the working day, local `HH:MM`.
    pub start: String,
    /// End of the working day, local `HH:MM` (exclusive).
    pub end: String,
    /// Dates (`YYYY-MM-DD`) that are not working days although their
    /// weekday is.
    pub holidays: Vec<String>,
    /// Dates that are working days although their weekday is not (China's
    /// make-up working weekends).
    pub extra_workdays: Vec<String>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            timezone: "Asia/Shanghai".to_string(),
            workdays: ["mon", "tue", "wed", "thu", "fri"]
                .iter()
                .map(|day| day.to_string())
                .collect(),
            start: "09:00".to_string(),
            end: "18:00".to_string(),
            holidays: Vec::new(),
            extra_workdays: Vec::new(),
        }
    }
}

/// A validated calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// The zone local times are read in.
    zone: TimeZone,
    /// Working weekdays, Monday first.
    workdays: [bool; 7],
    /// Working day start, minutes after local midnight.
    start_minute: u32,
    /// Working day end, minutes after local midnight.
    end_minute: u32,
    /// Local days (since 1970-01-01) off.
    holidays: HashSet<i64>,
    /// Local days (since 1970-01-01) on.
    extra_workdays: HashSet<i64>,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MS_PER_MINUTE: i64 = 60_000;
const MINUTES_PER_DAY: i64 = 1_440;

impl Default for Calendar {
    fn default() -> Self {
        // The default configuration is valid by construction.
        Calendar::new(&CalendarConfig::default()).unwrap_or(Calendar {
            zone: TimeZone::fixed(Offset::constant(8)),
            workdays: [true, true, true, true, true, false, false],
            start_minute: 540,
            end_minute: 1080,
            holidays: HashSet::new(),
            extra_workdays: HashSet::new(),
        })
    }
}

/// Why a calendar file cannot be used; both are the operator's to fix.
#[derive(Debug, thiserror::Error)]
pub enum CalendarLoadError {
    /// Unreadable, or not YAML of the calendar's shape.
    #[error(transparent)]
    Shape(#[from] countywatch_config::config_file::Problems),
    /// Values that do not make a calendar (an unknown zone, a bad date).
    #[error("{}", problems.0.iter().map(|problem| format!("{}: {problem}", file.display())).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The calendar file.
        file: std::path::PathBuf,
        /// Every problem, without position.
        problems: CalendarProblems,
    },
}

/// Every problem of a calendar's values, in the order they were found;
/// shown joined by `; `.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct CalendarProblems(pub Vec<CalendarProblem>);

/// One value of a calendar's configuration that is not usable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CalendarProblem {
    /// The time zone.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// A working day that is no weekday.
    #[error("unknown weekday {day:?} (expected mon .. sun)")]
    Weekday {
        /// The day as configured.
        day: String,
    },
    /// A start or end of working hours that is no time of day.
    #[error("{bound} {text:?} is not a local time HH:MM")]
    Clock {
        /// `start` or `end`.
        bound: &'static str,
        /// The time as configured.
        text: String,
    },
    /// A holiday or extra working day that is no date.
    #[error("{text:?} is not a date YYYY-MM-DD")]
    Date {
        /// The date as configured.
        text: String,
    },
}

impl Calendar {
    /// Checks a configuration, reporting every problem.
    pub fn new(config: &CalendarConfig) -> Result<Calendar, CalendarProblems> {
        let mut problems = Vec::new();
        let zone = parse_zone(&config.timezone).unwrap_or_else(|error| {
            problems.push(CalendarProblem::Zone(error));
            TimeZone::UTC
        });
        let mut workdays = [false; 7];
        for day in &config.workdays {
            match WEEKDAYS
                .iter()
                .position(|name| name.eq_ignore_ascii_case(day))
            {
                Some(index) => workdays[index] = true,
                None => problems.push(CalendarProblem::Weekday { day: day.clone() }),
            }
        }
        let mut minute = |text: &str, bound: &'static str| {
            parse_clock(text).unwrap_or_else(|| {
                problems.push(CalendarProblem::Clock {
                    bound,
                    text: text.to_string(),
                });
                0
            })
        };
        let start_minute = minute(&config.start, "start");
        let end_minute = minute(&config.end, "end");
        let mut dates = |list: &[String]| {
            let mut days = HashSet::new();
            for text in list {
                match parse_date(text) {
                    Some(day) => {
                        days.insert(day);
                    }
                    None => problems.push(CalendarProblem::Date { text: text.clone() }),
                }
            }
            days
        };
        let holidays = dates(&config.holidays);
        let extra_workdays = dates(&config.extra_workdays);
        if problems.is_empty() {
            Ok(Calendar {
                zone,
                workdays,
                start_minute,
                end_minute,
                holidays,
                extra_workdays,
            })
        } else {
            Err(CalendarProblems(problems))
        }
    }

    /// Reads a calendar file (the `calendar:` mapping of the collector's
    /// `detection:` section or of a test file, on its own: `timezone`,
    /// `workdays`, `start`, `end`, `holidays`, `extra_workdays`), as
    /// `rules replay --calendar` does. Problems name the file, and the line
    /// and column for the YAML's shape.
    pub fn load(path: &std::path::Path) -> Result<Calendar, CalendarLoadError> {
        let config: CalendarConfig = countywatch_config::config_file::load(path)?;
        Calendar::new(&config).map_err(|problems| CalendarLoadError::Invalid {
            file: path.to_path_buf(),
            problems,
        })
    }

    /// Minutes after local midnight at `at_ms`.
    pub fn local_minute(&self, at_ms: i64) -> u32 {
        let minutes = self.local_minutes(at_ms);
        u32::try_from(minutes.rem_euclid(MINUTES_PER_DAY)).unwrap_or(0)
    }

    /// Whether `at_ms` is inside working hours on a working day.
    pub fn is_working_time(&self, at_ms: i64) -> bool {
        let minutes = self.local_minutes(at_ms);
        let day = minutes.div_euclid(MINUTES_PER_DAY);
        let minute = u32::try_from(minutes.rem_euclid(MINUTES_PER_DAY)).unwrap_or(0);
        // 1970-01-01 was a Thursday (index 3 with Monday first).
        let weekday = usize::try_from((day + 3).rem_euclid(7)).unwrap_or(0);
        let working_day = if self.holidays.contains(&day) {
            false
        } else {
            self.extra_workdays.contains(&day) || self.workdays[weekday]
        };
        working_day && in_span(minute, self.start_minute, self.end_minute)
    }

    fn local_minutes(&self, at_ms: i64) -> i64 {
        let offset_seconds = jiff::Timestamp::from_millisecond(at_ms)
            .map(|instant| self.zone.to_offset(instant).seconds())
            .unwrap_or(0);
        at_ms.div_euclid(MS_PER_MINUTE) + i64::from(offset_seconds) / 60
    }

    /// The calendar's time zone.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

/// Whether `minute` is in `[from, to)`, a span that may wrap past midnight
/// (`22:00`-`06:00`).
pub fn in_span(minute: u32, from: u32, to: u32) -> bool {
    if from <= to {
        minute >= from && minute < to
    } else {
        minute >= from || minute < to
    }
}

/// Why a configured time zone is not usable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ZoneError {
    /// A name the time zone database does not hold.
    #[error(
        "unknown timezone {zone:?}: give an IANA zone like Asia/Shanghai or a fixed offset like +08:00"
    )]
    Unknown {
        /// The name as configured.
        zone: String,
    },
    /// An offset the time library refuses.
    #[error("timezone offset {text:?}: {source}")]
    Offset {
        /// The offset as configured.
        text: String,
        /// The time library's reason.
        source: jiff::Error,
    },
    /// An offset that is not `+HH:MM` within ±14:00.
    #[error("timezone offset {text:?} is not +HH:MM within ±14:00")]
    OffsetRange {
        /// The offset as configured.
        text: String,
    },
}

/// An IANA zone name or a fixed offset `+HH:MM` within ±14:00.
pub fn parse_zone(text: &str) -> Result<TimeZone, ZoneError> {
    let sign = match text.chars().next() {
        Some('+') => 1,
        Some('-') => -1,
        _ => {
            return TimeZone::get(text).map_err(|_| ZoneError::Unknown {
                zone: text.to_string(),
            });
        }
    };
    match parse_clock(&text[1..]) {
        Some(minutes) if minutes <= 14 * 60 => {
            let seconds = sign * i32::try_from(minutes).unwrap_or(0) * 60;
            Offset::from_seconds(seconds)
                .map(TimeZone::fixed)
                .map_err(|source| ZoneError::Offset {
                    text: text.to_string(),
                    source,
                })
        }
        _ => Err(ZoneError::OffsetRange {
            text: text.to_string(),
        }),
    }
}

/// `HH:MM` to minutes after midnight; `24:00` is allowed as an end.
pub fn parse_clock(text: &str) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes != 0) {
        return None;
    }
    Some(hours * 60 + minutes)
}

/// `YYYY-MM-DD` to days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    // 2440588 is the Julian day number of 1970-01-01.
    Some(i64::from(date.to_julian_day()) - 2_440_588)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(date: &str, hour: i64, minute: i64, offset_minutes: i64) -> i64 {
        let day = parse_date(date).unwrap();
        ((day * 1440 + hour * 60 + minute) - offset_minutes) * 60_000
    }

    #[test]
    fn shanghai_office_hours_by_default() {
        let calendar = Calendar::default();
        // 2026-11-02 is a Monday.
        assert!(calendar.is_working_time(at("2026-11-02", 9, 0, 480)));
        assert!(calendar.is_working_time(at("2026-11-02", 17, 59, 480)));
        assert!(!calendar.is_working_time(at("2026-11-02", 18, 0, 480)));
        assert!(!calendar.is_working_time(at("2026-11-02", 8, 59, 480)));
        // 10:00 UTC is 18:00 in Shanghai: outside.
        assert!(!calendar.is_working_time(at("2026-11-02", 10, 0, 0)));
        // Saturday.
        assert!(!calendar.is_working_time(at("2026-11-07", 10, 0, 480)));
    }

    #[test]
    fn holidays_and_make_up_days_override_weekdays() {
        let config = CalendarConfig {
            holidays: vec!["2026-10-01".into()],
            extra_workdays: vec!["2026-10-10".into()],
            ..CalendarConfig::default()
        };
        let calendar = Calendar::new(&config).unwrap();
        assert!(!calendar.is_working_time(at("2026-10-01", 10, 0, 480)));
        assert!(calendar.is_working_time(at("2026-10-10", 10, 0, 480)));
    }

    #[test]
    fn bad_calendars_report_every_problem() {
        let config = CalendarConfig {
            timezone: "Mars/Olympus_Mons".into(),
            workdays: vec!["funday".into()],
            start: "9am".into(),
            holidays: vec!["2026-13-01".into()],
            ..CalendarConfig::default()
        };
        let problems = Calendar::new(&config).unwrap_err().0;
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].to_string().contains("Mars/Olympus_Mons"));
        let offset = CalendarConfig {
            timezone: "-05:30".into(),
            ..CalendarConfig::default()
        };
        let calendar = Calendar::new(&offset).unwrap();
        assert_eq!(calendar.local_minute(at("2026-11-02", 10, 0, -330)), 600);
    }

    #[test]
    fn zones_with_daylight_saving_follow_it() {
        let berlin = Calendar::new(&CalendarConfig {
            timezone: "Europe/Berlin".into(),
            ..CalendarConfig::default()
        })
        .unwrap();
        // 09:30 local is 08:30 UTC in winter (+01:00), 07:30 in summer (+02:00).
        assert_eq!(berlin.local_minute(at("2026-01-12", 8, 30, 0)), 570);
        assert_eq!(berlin.local_minute(at("2026-07-13", 7, 30, 0)), 570);
        assert!(berlin.is_working_time(at("2026-07-13", 7, 30, 0)));
        assert!(!berlin.is_working_time(at("2026-01-12", 7, 30, 0)));
    }

    #[test]
    fn spans_wrap_past_midnight() {
        assert!(in_span(23 * 60, 22 * 60, 6 * 60));
        assert!(in_span(60, 22 * 60, 6 * 60));
        assert!(!in_span(12 * 60, 22 * 60, 6 * 60));
    }
}
