//! One series' up/down timeline, folded into hours as time passes: pure
//! (no IO, no clock; the caller passes every time), so the arithmetic the
//! report's figures rest on is tested here without a collector.
//!
//! A series is *observed* (a sample says up or down at a time) and
//! *settled* (time moves on without a sample). Between observations the
//! last state holds for at most `stale_ms`; after that an agent counts as
//! down (the collector stopped hearing from it, as liveness says) and any
//! other series as unknown (its agent was not there to look), which counts
//! neither as up nor as down. Every settled stretch is split at hour
//! boundaries into [`HourStats`]; state changes open and close
//! [`Outage`]s.

use std::collections::BTreeMap;

/// An hour in Unix milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// What the last state becomes once no sample came for `stale_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterStale {
    /// Down: an agent the collector stopped hearing from.
    Down,
    /// Unknown: a probe or device whose agent stopped reporting.
    Unknown,
}

/// One hour of one series, as written to `history.db`'s `hours` table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HourStats {
    /// Milliseconds up.
    pub up_ms: i64,
    /// Milliseconds whose state is known (up or down).
    pub known_ms: i64,
    /// State changes (up to down or down to up) in the hour.
    pub changes: i64,
    /// The longest stretch of one outage inside the hour.
    pub longest_down_ms: i64,
    /// The last HTTP status seen in the hour (service probes over HTTP).
    pub http_status: Option<i64>,
    /// The last certificate expiry seen in the hour, Unix milliseconds.
    pub tls_expiry_ms: Option<i64>,
}

/// A stretch of downtime: started, and ended unless still going on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// When the series went down.
    pub start_ms: i64,
    /// When it came back, `None` while still down.
    pub end_ms: Option<i64>,
}

/// The timeline of one series.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// How long a state holds without a sample.
    stale_ms: i64,
    /// What the state becomes after that.
    after_stale: AfterStale,
    /// The current state (`None`: unknown) and the time up to which it has
    /// been folded into hours.
    state: Option<bool>,
    /// Time folded into hours so far; nothing before it changes any more.
    settled_ms: i64,
    /// The last sample's time, from which staleness counts.
    last_seen_ms: i64,
    /// Hours not yet handed to the writer.
    hours: BTreeMap<i64, HourStats>,
    /// The outage in progress, if any.
    open_outage: Option<i64>,
    /// Outages that changed since the writer last took them (closed ones,
    /// and the open one when it started).
    outages: Vec<Outage>,
}

/// The start of the hour holding `ms`.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

impl Timeline {
    /// A series first seen at `at_ms` in state `up`.
    pub fn new(at_ms: i64, up: bool, stale_ms: i64, after_stale: AfterStale) -> Timeline {
        let mut timeline = Timeline {
            stale_ms: stale_ms.max(1),
            after_stale,
            state: Some(up),
            settled_ms: at_ms,
            last_seen_ms: at_ms,
            hours: BTreeMap::new(),
            open_outage: None,
            outages: Vec::new(),
        };
        if !up {
            timeline.open(at_ms);
        }
        timeline
    }

    /// A sample at `at_ms` saying up or down. A sample older than what is
    /// already settled counts at the settled time: its change is late,
    /// never lost, and time already written is never rewritten.
    pub fn observe(&mut self, at_ms: i64, up: bool) {
        let at_ms = at_ms.max(self.settled_ms);
        self.settle(at_ms);
        self.last_seen_ms = self.last_seen_ms.max(at_ms);
        self.change_to(at_ms, Some(up));
    }

    /// Notes the last HTTP status and certificate expiry of a probe sample.
    pub fn note_values(
        &mut self,
        at_ms: i64,
        http_status: Option<i64>,
        tls_expiry_ms: Option<i64>,
    ) {
        let at_ms = at_ms.max(self.settled_ms);
        let hour = self.hours.entry(hour_of(at_ms)).or_default();
        if http_status.is_some() {
            hour.http_status = http_status;
        }
        if tls_expiry_ms.is_some() {
            hour.tls_expiry_ms = tls_expiry_ms;
        }
    }

    /// Folds time up to `until_ms` into hours with no new sample: the
    /// state holds until it is stale, then becomes down or unknown.
    pub fn settle(&mut self, until_ms: i64) {
        if until_ms <= self.settled_ms {
            return;
        }
        let stale_at = self.last_seen_ms.saturating_add(self.stale_ms);
        if self.state.is_some() && until_ms > stale_at {
            let held_until = stale_at.max(self.settled_ms);
            self.fold(held_until);
            let after = match self.after_stale {
                AfterStale::Down => Some(false),
                AfterStale::Unknown => None,
            };
            if self.state != after {
                self.change_to(held_until, after);
            }
        }
        self.fold(until_ms);
    }

    /// The last sample's time.
    pub fn last_seen_ms(&self) -> i64 {
        self.last_seen_ms
    }

    /// Hands over the hours before `before_ms` (settle first) and the
    /// outages that changed, forgetting them.
    pub fn take(&mut self, before_ms: i64) -> (Vec<(i64, HourStats)>, Vec<Outage>) {
        let later = self.hours.split_off(&hour_of(before_ms));
        let taken = std::mem::replace(&mut self.hours, later);
        (
            taken.into_iter().collect(),
            std::mem::take(&mut self.outages),
        )
    }

    /// Hands over everything, the hour in progress included.
    pub fn take_all(&mut self) -> (Vec<(i64, HourStats)>, Vec<Outage>) {
        (
            std::mem::take(&mut self.hours).into_iter().collect(),
            std::mem::take(&mut self.outages),
        )
    }

    fn change_to(&mut self, at_ms: i64, state: Option<bool>) {
        if self.state == state {
            return;
        }
        // A change between up and down is a state change; unknown is not a
        // state of the service, so going unknown and back is not counted.
        if let (Some(before), Some(after)) = (self.state, state)
            && before != after
        {
            self.hours.entry(hour_of(at_ms)).or_default().changes += 1;
        }
        match state {
            Some(false) => self.open(at_ms),
            // Coming back up closes the outage; going unknown ends what is
            // known of it.
            _ => self.close(at_ms),
        }
        self.state = state;
    }

    fn open(&mut self, at_ms: i64) {
        if self.open_outage.is_none() {
            self.open_outage = Some(at_ms);
            self.outages.push(Outage {
                start_ms: at_ms,
                end_ms: None,
            });
        }
    }

    fn close(&mut self, at_ms: i64) {
        if let Some(start_ms) = self.open_outage.take() {
            self.outages.retain(|outage| outage.start_ms != start_ms);
            self.outages.push(Outage {
                start_ms,
                end_ms: Some(at_ms),
            });
        }
    }

    /// Adds the stretch from `settled_ms` to `until_ms` in the current
    /// state, hour by hour.
    fn fold(&mut self, until_ms: i64) {
        let mut from = self.settled_ms;
        while from < until_ms {
            let hour = hour_of(from);
            let to = until_ms.min(hour + HOUR_MS);
            let stats = self.hours.entry(hour).or_default();
            let length = to - from;
            match self.state {
                Some(true) => {
                    stats.up_ms += length;
                    stats.known_ms += length;
                }
                Some(false) => {
                    stats.known_ms += length;
                    let run_start = self.open_outage.unwrap_or(from).max(hour);
                    stats.longest_down_ms = stats.longest_down_ms.max(to - run_start);
                }
                None => {}
            }
            from = to;
        }
        self.settled_ms = self.settled_ms.max(until_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn an_outage_across_an_hour_boundary_is_split_into_both_hours_and_kept_whole() {
        let mut timeline = Timeline::new(0, true, 10 * MIN, AfterStale::Unknown);
        for minute in (5..=180).step_by(5) {
            // Down from 0:50 to 1:20 (the samples at 0:50..1:15 say down).
            let up = !(50..80).contains(&minute);
            timeline.observe(minute * MIN, up);
        }
        timeline.settle(3 * HOUR_MS);
        let (hours, outages) = timeline.take(3 * HOUR_MS);
        assert_eq!(hours.len(), 3);
        assert_eq!(hours[0].1.up_ms, 50 * MIN);
        assert_eq!(hours[0].1.known_ms, 60 * MIN);
        assert_eq!(hours[0].1.changes, 1);
        assert_eq!(hours[0].1.longest_down_ms, 10 * MIN);
        assert_eq!(hours[1].1.up_ms, 40 * MIN);
        assert_eq!(hours[1].1.changes, 1);
        assert_eq!(hours[1].1.longest_down_ms, 20 * MIN);
        assert_eq!(hours[2].1.up_ms, 60 * MIN);
        assert_eq!(
            outages,
            vec![Outage {
                start_ms: 50 * MIN,
                end_ms: Some(80 * MIN)
            }]
        );
    }

    #[test]
    fn an_agent_is_down_from_the_moment_it_went_stale_until_it_reports_again() {
        let mut timeline = Timeline::new(0, true, 10 * MIN, AfterStale::Down);
        timeline.observe(5 * MIN, true);
        // Silent from 0:05; stale at 0:15; back at 0:40.
        timeline.settle(30 * MIN);
        timeline.observe(40 * MIN, true);
        timeline.observe(50 * MIN, true);
        timeline.settle(HOUR_MS);
        let (hours, outages) = timeline.take(HOUR_MS);
        assert_eq!(hours[0].1.up_ms, 35 * MIN);
        assert_eq!(hours[0].1.known_ms, 60 * MIN);
        assert_eq!(hours[0].1.changes, 2);
        assert_eq!(hours[0].1.longest_down_ms, 25 * MIN);
        assert_eq!(
            outages,
            vec![Outage {
                start_ms: 15 * MIN,
                end_ms: Some(40 * MIN)
            }]
        );
    }

    #[test]
    fn a_late_sample_without_settling_gives_the_same_answer_as_with_it() {
        let mut settled = Timeline::new(0, true, 10 * MIN, AfterStale::Down);
        settled.settle(20 * MIN);
        settled.observe(40 * MIN, true);
        let mut lazy = Timeline::new(0, true, 10 * MIN, AfterStale::Down);
        lazy.observe(40 * MIN, true);
        assert_eq!(settled.take_all(), lazy.take_all());
    }

    #[test]
    fn a_probe_whose_agent_went_away_is_unknown_not_down_and_its_outage_ends_there() {
        let mut timeline = Timeline::new(0, false, 10 * MIN, AfterStale::Unknown);
        timeline.settle(HOUR_MS);
        let (hours, outages) = timeline.take(HOUR_MS);
        assert_eq!(hours[0].1.known_ms, 10 * MIN);
        assert_eq!(hours[0].1.up_ms, 0);
        assert_eq!(hours[0].1.changes, 0);
        assert_eq!(
            outages,
            vec![Outage {
                start_ms: 0,
                end_ms: Some(10 * MIN)
            }]
        );
    }

    #[test]
    fn hours_are_handed_over_once_and_the_open_outage_is_reported_open() {
        let mut timeline = Timeline::new(0, true, HOUR_MS, AfterStale::Unknown);
        timeline.observe(30 * MIN, false);
        timeline.settle(70 * MIN);
        let (first, outages) = timeline.take(HOUR_MS);
        assert_eq!(first.len(), 1);
        assert_eq!(
            outages,
            vec![Outage {
                start_ms: 30 * MIN,
                end_ms: None
            }]
        );
        let (rest, outages) = timeline.take_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].1.known_ms, 10 * MIN);
        assert_eq!(rest[0].1.longest_down_ms, 10 * MIN);
        assert!(outages.is_empty());
    }
}
