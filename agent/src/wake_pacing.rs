//! When the run loop polls the sources after one of them woke it (new
//! log lines, a file change, received syslog), to spool their events as an
//! events-only batch between two collections. This module owns that
//! timing and nothing else; the run loop in `lib.rs` does the polling.
//!
//! The first wake after a quiet spell is polled [`SETTLE`] later, so that
//! an attack's lines reach the collector (and its block the firewall) at
//! once instead of waiting for the next collection. During a flood, polls
//! are at least [`MIN_GAP`] apart: at most ten events-only batches a
//! second, however fast lines arrive, each holding everything written
//! since the previous poll (up to `sources.max_events_per_batch`).
//!
//! Nothing is lost by pacing: a wake that comes while the loop waits or
//! polls leaves a permit in the sources' `Notify`, which makes the loop
//! poll again after this wait, and a poll reads everything written before
//! it. Such a permit is often stale (its lines were read by the poll that
//! followed): the poll it causes finds nothing, spools nothing and does not
//! count toward the gap, so the next attack after it is not held back.
//! Received syslog still waiting after a full batch (a backlog) is polled
//! again at once, since its queue is bounded and a flood would otherwise
//! be dropped from it. The interval's collection is a batch of its own and
//! does not count either. Pure: the time is passed in.

use std::time::Duration;

use tokio::time::Instant;

/// How long after the first wake of a quiet spell the sources are polled.
/// One write of a burst (rsyslog writing a queue of lines, a package
/// upgrade touching many watched files) wakes the loop several times
/// within a few milliseconds; 20 ms gathers those into one batch and adds
/// little to the time from an attacker's line to its block.
pub const SETTLE: Duration = Duration::from_millis(20);

/// Shortest time between two polls of the sources that spooled an
/// events-only batch, and so the longest an attacker's line waits in a
/// flood. Each batch costs a spool transaction (one fsync), a POST and a
/// collector transaction; the collector ingests about 2,000 batches a
/// second (docs/benchmarks.md, ingest), so ten a second from a flooded
/// host is half a percent of it, and if many flood at once its ingest
/// budget answers `Retry-After` while the spool holds the batches. In the
/// response_latency benchmark (100 new attackers a second) a 200 ms gap
/// gave 165-169 ms p50 from log line to block, level with fail2ban's best,
/// and 100 ms gave 86-98 ms; the agent's CPU in that flood went from 11 %
/// to 16-24 % of a core, two fifths of it the SSH-peer check reading
/// /proc/net/tcp once per applied feed (docs/benchmarks.md,
/// response_latency).
pub const MIN_GAP: Duration = Duration::from_millis(100);

/// The pacing state: when the last events-only batch was polled.
#[derive(Clone, Copy, Debug, Default)]
pub struct WakePacing {
    /// When the poll that spooled the last events-only batch began; `None`
    /// before the first.
    last_batch: Option<Instant>,
}

impl WakePacing {
    /// When to poll after a wake at `woken`: [`SETTLE`] after it and no
    /// sooner than [`MIN_GAP`] after the poll of the previous events-only
    /// batch; at once when received syslog is still waiting after a full
    /// batch (`backlog`).
    pub fn poll_at(&self, woken: Instant, backlog: bool) -> Instant {
        if backlog {
            return woken;
        }
        let settled = woken + SETTLE;
        match self.last_batch {
            Some(last) => settled.max(last + MIN_GAP),
            None => settled,
        }
    }

    /// Records that the poll begun at `at` spooled an events-only batch.
    pub fn spooled(&mut self, at: Instant) {
        self.last_batch = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A source with lines written at `writes_ms` (offsets from `start`),
    /// polled as the run loop polls it: woken by a write, paced by
    /// [`WakePacing`], each poll taking every line written by then.
    /// Returns the batches: (poll offset, the lines' write offsets).
    fn simulate(start: Instant, writes_ms: &[u64]) -> Vec<(Duration, Vec<u64>)> {
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut pacing = WakePacing::default();
        let mut unread: VecDeque<u64> = writes_ms.iter().copied().collect();
        let mut batches = Vec::new();
        // The loop waits for a wake (the first unread write), sleeps until
        // the paced time, then polls.
        while let Some(&first) = unread.front() {
            let poll = pacing.poll_at(at(first), false);
            let mut read = Vec::new();
            while let Some(written) = unread.front().copied().filter(|&ms| at(ms) <= poll) {
                read.push(written);
                unread.pop_front();
            }
            pacing.spooled(poll);
            batches.push((poll - start, read));
        }
        batches
    }

    #[test]
    fn the_first_lines_after_a_quiet_spell_are_polled_after_the_settle_window_only() {
        let start = Instant::now();
        assert_eq!(
            simulate(start, &[0, 5, 12]),
            vec![(SETTLE, vec![0, 5, 12])],
            "a burst within the settle window is one batch"
        );
        assert_eq!(
            simulate(start, &[0, 3_000]),
            vec![
                (SETTLE, vec![0]),
                (Duration::from_millis(3_000) + SETTLE, vec![3_000]),
            ],
            "a line after a quiet spell waits only for the settle window"
        );
    }

    #[test]
    fn a_flood_is_coalesced_into_at_most_ten_batches_a_second_and_nothing_is_lost() {
        let start = Instant::now();
        // A line every 2 ms for ten seconds: 5,000 lines.
        let writes: Vec<u64> = (0..5_000).map(|index| index * 2).collect();
        let batches = simulate(start, &writes);
        let read: Vec<u64> = batches
            .iter()
            .flat_map(|(_, lines)| lines.iter().copied())
            .collect();
        assert_eq!(read, writes, "every line once, in order");
        assert!(
            batches.len() <= 10 * 10 + 1,
            "{} batches in ten seconds",
            batches.len()
        );
        for pair in batches.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= MIN_GAP, "{pair:?}");
        }
        // No line waits longer than the gap.
        for (poll, lines) in &batches {
            for written in lines {
                assert!(*poll - Duration::from_millis(*written) <= MIN_GAP);
            }
        }
    }

    #[test]
    fn a_poll_that_spooled_nothing_does_not_hold_back_the_next_and_a_backlog_goes_at_once() {
        let start = Instant::now();
        let mut pacing = WakePacing::default();
        pacing.spooled(start);
        // A stale permit: the poll it causes waits the gap, finds nothing
        // and is not recorded; a line just after goes with the settle
        // window only.
        assert_eq!(pacing.poll_at(start + SETTLE, false), start + MIN_GAP);
        let woken = start + MIN_GAP + Duration::from_millis(5);
        assert_eq!(pacing.poll_at(woken, false), woken + SETTLE);
        // Within the gap of a batch, received syslog left waiting after a
        // full batch is polled again at once.
        let woken = start + Duration::from_millis(30);
        assert_eq!(pacing.poll_at(woken, true), woken);
        assert_eq!(pacing.poll_at(woken, false), start + MIN_GAP);
    }
}
