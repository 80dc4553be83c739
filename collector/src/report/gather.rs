//! Reading a report's [`Inputs`]: the range in the display zone, then
//! `history.db` (after copying the incident store's incidents into it, so
//! the report sees the latest acknowledgements), the event log's oldest
//! event, `audit verify`, the registry's agents and the audit trail's
//! backups. The only IO of the report; [`super::build`] is pure.

use jiff::ToSpan;
use jiff::civil::Date;

use std::path::Path;
use std::time::Duration;

use super::{AuditEvidence, Inputs};
use crate::incident::store::IncidentStore;
use crate::registry::Registry;
use countywatch_notify::display::Display;

/// `[from, to)` in Unix milliseconds.
pub type Span = (i64, i64);

/// What a report covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Range {
    /// A calendar month, local time.
    Month {
        /// Its year.
        year: i16,
        /// Its month, 1 to 12.
        month: i8,
    },
    /// Whole local days, both included.
    Days {
        /// The first day.
        first: Date,
        /// The last day.
        last: Date,
    },
}

/// Why a range could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    /// `--month` is not `YYYY-MM`.
    #[error("month {0:?} is not YYYY-MM")]
    Month(String),
    /// A day is not `YYYY-MM-DD`.
    #[error("day {0:?} is not YYYY-MM-DD")]
    Day(String),
    /// The last day is before the first.
    #[error("--to {last} is before --from {first}")]
    Backwards {
        /// The first day.
        first: Date,
        /// The last day.
        last: Date,
    },
    /// A date the zone cannot place.
    #[error("cannot place {0} in the display time zone")]
    Zone(Date),
}

impl Range {
    /// `--month YYYY-MM`.
    pub fn month(text: &str) -> Result<Range, RangeError> {
        let bad = || RangeError::Month(text.to_string());
        let (year, month) = text.split_once('-').ok_or_else(bad)?;
        let year: i16 = year.parse().map_err(|_| bad())?;
        let month: i8 = month.parse().map_err(|_| bad())?;
        Date::new(year, month, 1).map_err(|_| bad())?;
        Ok(Range::Month { year, month })
    }

    /// `--from YYYY-MM-DD --to YYYY-MM-DD`, both days included.
    pub fn days(first: &str, last: &str) -> Result<Range, RangeError> {
        let day = |text: &str| {
            text.parse::<Date>()
                .map_err(|_| RangeError::Day(text.to_string()))
        };
        let (first, last) = (day(first)?, day(last)?);
        if last < first {
            return Err(RangeError::Backwards { first, last });
        }
        Ok(Range::Days { first, last })
    }

    /// The range and the one before it (the previous month, or as many
    /// days right before), as `[from, to)` in Unix milliseconds.
    pub fn bounds(&self, display: &Display) -> Result<(Span, Span), RangeError> {
        let (start, end, previous) = match *self {
            Range::Month { year, month } => {
                let start = Date::new(year, month, 1).map_err(|_| RangeError::Zone(Date::MIN))?;
                let end = start
                    .checked_add(1.month())
                    .map_err(|_| RangeError::Zone(start))?;
                let previous = start
                    .checked_sub(1.month())
                    .map_err(|_| RangeError::Zone(start))?;
                (start, end, previous)
            }
            Range::Days { first, last } => {
                let end = last
                    .checked_add(1.day())
                    .map_err(|_| RangeError::Zone(last))?;
                let length = first.until(end).map_err(|_| RangeError::Zone(first))?;
                let previous = first
                    .checked_sub(length)
                    .map_err(|_| RangeError::Zone(first))?;
                (first, end, previous)
            }
        };
        let ms = |date: Date| {
            date.to_zoned(display.zone().clone())
                .map(|zoned| zoned.timestamp().as_millisecond())
                .map_err(|_| RangeError::Zone(date))
        };
        Ok(((ms(start)?, ms(end)?), (ms(previous)?, ms(start)?)))
    }
}

/// Where a report's inputs are read: the command opens these itself, the
/// console passes its own.
pub struct Sources<'a> {
    /// The data directory (`history.db`, `collector.db`, the audit key).
    pub data_dir: &'a Path,
    /// The incident store (incidents, audit trail).
    pub store: &'a IncidentStore,
    /// The registry (enrolled agents).
    pub registry: &'a Registry,
    /// `agents.silent_after`: who counts as reporting.
    pub silent_after: Duration,
}

/// Reads everything a report of `range` needs, as of `now_ms`.
pub fn gather(
    sources: &Sources<'_>,
    display: &Display,
    range: &Range,
    department: Option<&str>,
    now_ms: i64,
) -> anyhow::Result<Inputs> {
    let ((from_ms, to_ms), (previous_from_ms, previous_to_ms)) = range.bounds(display)?;
    let data_dir = sources.data_dir;
    let store = sources.store;
    let mut history = crate::history::open(data_dir)?;
    crate::history::copy_incidents(&mut history, &store.report_records()?)?;
    let series = crate::history::series_summaries(&history, from_ms, to_ms)?;
    let outages = crate::history::outages(&history, from_ms, to_ms)?;
    let incidents = crate::history::incidents(&history, from_ms, to_ms)?;
    let previous_incidents = crate::history::incidents(&history, previous_from_ms, previous_to_ms)?;
    let oldest_event_ms = crate::event_log::EventLog::open_read_only(data_dir)
        .ok()
        .and_then(|log| log.oldest_received_ms().ok().flatten());
    let options = crate::audit::VerifyOptions {
        checkpoint_every: store.settings.checkpoint_every,
        anchors: None,
    };
    let audit = crate::audit::verify_with(data_dir, &options)
        .ok()
        .map(|verification| AuditEvidence {
            problem: verification
                .first_break
                .map(|broken| format!("{}: {}", broken.at, broken.problem)),
            entries: verification.entries,
            checkpoints: verification.checkpoints,
            newest_checkpoint_ms: verification
                .newest_checkpoint
                .map(|checkpoint| checkpoint.at),
        });
    let silent_ms = i64::try_from(sources.silent_after.as_millis()).unwrap_or(i64::MAX);
    let enrolled: Vec<_> = sources
        .registry
        .agents()?
        .into_iter()
        .filter(|agent| agent.revoked_ms.is_none())
        .collect();
    let agents_reporting = enrolled
        .iter()
        .filter(|agent| {
            agent
                .last_seen_ms
                .is_some_and(|seen| now_ms.saturating_sub(seen) <= silent_ms)
        })
        .count();
    let backups_ms = crate::audit::times_of_action(store, "store.backed_up", from_ms, to_ms)?;
    Ok(Inputs {
        from_ms,
        to_ms,
        previous_from_ms,
        previous_to_ms,
        now_ms,
        department: department.map(str::to_string),
        series,
        outages,
        incidents,
        previous_incidents,
        oldest_event_ms,
        audit,
        agents_enrolled: enrolled.len(),
        agents_reporting,
        backups_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_notify::display::Language;

    #[test]
    fn a_month_and_a_day_range_are_local_days_with_the_period_before() {
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let display = Display::with_zone(zone, Language::Zh);
        let november = Range::month("2026-11").unwrap();
        let ((from, to), (before, start)) = november.bounds(&display).unwrap();
        // 2026-11-01 00:00 +08:00 is 2026-10-31 16:00 UTC.
        assert_eq!(from, 1_793_462_400_000);
        assert_eq!(to - from, 30 * 86_400_000);
        assert_eq!(start, from);
        assert_eq!(from - before, 31 * 86_400_000, "October has 31 days");
        let half = Range::days("2026-11-01", "2026-11-15").unwrap();
        let ((from, to), (before, _)) = half.bounds(&display).unwrap();
        assert_eq!(to - from, 15 * 86_400_000);
        assert_eq!(from - before, 15 * 86_400_000);
        assert!(Range::month("2026-13").is_err());
        assert!(Range::days("2026-11-15", "2026-11-01").is_err());
    }
}
