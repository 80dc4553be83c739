//! `rules replay`: recorded events (the agent's `replay` output, one JSON
//! event per line) through the rules, for backtesting a rule on last
//! month's logs before enabling it. Events are run in file order with their
//! own timestamps, as the collector would have seen them.
//!
//! The file is streamed: one line in memory at a time, each detection handed
//! to the caller's [`ReplaySink`] as it fires, so a month of logs runs in
//! bounded memory (docs/benchmarks.md, `rules replay` peak RSS). The engine
//! keeps only event ids in its state; here an event's id is the byte offset
//! of its line, and the evidence of a detection is read back through an
//! [`EvidenceSource`]: [`Reread`] seeks a second handle on the same file,
//! [`RecentEvents`] (for standard input, which cannot be read twice) keeps
//! the last events in memory.
//!
//! Lines must be in time order, as the agent's `replay` writes them (the
//! engine's windows only move forward). A line that is not an event, is
//! older than the event before it, or is longer than [`MAX_LINE_BYTES`] is
//! skipped, reported to the sink with its line number, and counted; the
//! rest of the file is still replayed.

use std::collections::VecDeque;
use std::io::{BufRead, Read, Seek, SeekFrom};

use countywatch_wire::Event;

use crate::detection::Detection;
use crate::engine::Engine;

/// Longest line read as an event. The largest event the wire accepts (16
/// KiB raw, 4 KiB per field, JSON-escaped) fits with room to spare; longer
/// lines are skipped without being held in memory.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Events [`RecentEvents`] keeps for evidence: about 70 MB (1.1 KB an
/// event, docs/benchmarks.md), enough for a 10-minute window at 100
/// events a second.
pub const RECENT_EVENTS: usize = 65_536;

/// Where a replay's results go, as they happen.
pub trait ReplaySink {
    /// A rule fired. An error (a closed output) stops the replay.
    fn detection(&mut self, detection: &Detection) -> std::io::Result<()>;
    /// Line `line_number` (1-based) was skipped for `reason`.
    fn skipped(&mut self, line_number: u64, reason: &SkipReason);
}

/// Why a line was not replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Not a JSON event; serde's message.
    NotAnEvent(String),
    /// Its time is before the previous event's.
    OutOfOrder {
        /// The line's time, ms since the Unix epoch.
        at_ms: i64,
        /// The latest time replayed so far.
        previous_ms: i64,
    },
    /// Longer than [`MAX_LINE_BYTES`].
    TooLong,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::NotAnEvent(error) => write!(f, "not an event: {error}"),
            SkipReason::OutOfOrder { at_ms, previous_ms } => write!(
                f,
                "out of time order: {} is before the previous event's {}",
                format_time(*at_ms),
                format_time(*previous_ms)
            ),
            SkipReason::TooLong => write!(f, "longer than {MAX_LINE_BYTES} bytes"),
        }
    }
}

/// What a replay did, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Events replayed.
    pub events: u64,
    /// Detections raised.
    pub detections: u64,
    /// Lines skipped because they were not events.
    pub not_events: u64,
    /// Lines skipped because they were out of time order.
    pub out_of_order: u64,
    /// Lines skipped because they were too long.
    pub too_long: u64,
    /// Evidence events that could not be read back (standard input keeps
    /// only the last [`RECENT_EVENTS`]).
    pub evidence_missing: u64,
}

impl ReplaySummary {
    /// Every line skipped, for whatever reason.
    pub fn skipped(&self) -> u64 {
        self.not_events + self.out_of_order + self.too_long
    }
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events, {} detections, {} lines skipped ({} not events, {} out of time order, {} too long)",
            self.events,
            self.detections,
            self.skipped(),
            self.not_events,
            self.out_of_order,
            self.too_long
        )?;
        if self.evidence_missing > 0 {
            write!(
                f,
                ", {} evidence events no longer in memory (give a file instead of standard input)",
                self.evidence_missing
            )?;
        }
        Ok(())
    }
}

/// Reads an event back by the byte offset of its line.
pub trait EvidenceSource {
    /// Notes the event just read from the line at `offset`.
    fn record(&mut self, offset: u64, event: &Event);
    /// The event of the line at `offset`, when it can still be had.
    fn fetch(&mut self, offset: u64) -> Option<Event>;
    /// How many fetches found nothing.
    fn missing(&self) -> u64;
}

/// Evidence read back from a second, seekable handle on the replayed file:
/// nothing is kept in memory, and any event can be had however old.
pub struct Reread<R> {
    /// The second handle.
    reader: R,
    /// Reused line buffer.
    line: Vec<u8>,
    /// Fetches that found no event.
    missing: u64,
}

impl<R: Read + Seek> Reread<R> {
    /// Evidence from `reader`, which holds the same bytes as the input.
    pub fn new(reader: R) -> Reread<R> {
        Reread {
            reader,
            line: Vec::new(),
            missing: 0,
        }
    }

    fn read_at(&mut self, offset: u64) -> Option<Event> {
        self.reader.seek(SeekFrom::Start(offset)).ok()?;
        self.line.clear();
        let mut reader = std::io::BufReader::new(&mut self.reader).take(MAX_LINE_BYTES as u64);
        reader.read_until(b'\n', &mut self.line).ok()?;
        serde_json::from_slice(&self.line).ok()
    }
}

impl<R: Read + Seek> EvidenceSource for Reread<R> {
    fn record(&mut self, _offset: u64, _event: &Event) {}

    fn fetch(&mut self, offset: u64) -> Option<Event> {
        let event = self.read_at(offset);
        self.missing += u64::from(event.is_none());
        event
    }

    fn missing(&self) -> u64 {
        self.missing
    }
}

/// Evidence kept in memory: the last `capacity` events, for input that
/// cannot be read twice. Older evidence is missing from detections (and
/// counted).
pub struct RecentEvents {
    /// (offset, event), oldest first; offsets increase.
    events: VecDeque<(u64, Event)>,
    /// Most events kept.
    capacity: usize,
    /// Fetches that found no event.
    missing: u64,
}

impl RecentEvents {
    /// Keeps the last `capacity` events.
    pub fn new(capacity: usize) -> RecentEvents {
        RecentEvents {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            missing: 0,
        }
    }
}

impl EvidenceSource for RecentEvents {
    fn record(&mut self, offset: u64, event: &Event) {
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back((offset, event.clone()));
    }

    fn fetch(&mut self, offset: u64) -> Option<Event> {
        let found = self
            .events
            .binary_search_by_key(&offset, |(kept, _)| *kept)
            .ok()
            .and_then(|index| self.events.get(index))
            .map(|(_, event)| event.clone());
        self.missing += u64::from(found.is_none());
        found
    }

    fn missing(&self) -> u64 {
        self.missing
    }
}

/// Runs every event of `input` through `engine`, one line at a time,
/// handing detections and skipped lines to `sink` as they happen.
/// Evidence is read back through `evidence`. Fails only when reading the
/// input fails or the sink refuses a detection.
pub fn replay(
    engine: &mut Engine,
    mut input: impl BufRead,
    evidence: &mut dyn EvidenceSource,
    sink: &mut dyn ReplaySink,
) -> std::io::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    let mut line = Vec::with_capacity(4096);
    let mut found = Vec::new();
    let mut offset = 0u64;
    let mut line_number = 0u64;
    let mut latest_ms = i64::MIN;
    loop {
        line.clear();
        let read =
            Read::take(&mut input, MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        let line_offset = offset;
        offset += read as u64;
        line_number += 1;
        if read > MAX_LINE_BYTES && line.last() != Some(&b'\n') {
            offset += skip_rest_of_line(&mut input)?;
            summary.too_long += 1;
            sink.skipped(line_number, &SkipReason::TooLong);
            continue;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let event: Event = match serde_json::from_slice(&line) {
            Ok(event) => event,
            Err(error) => {
                summary.not_events += 1;
                sink.skipped(line_number, &SkipReason::NotAnEvent(error.to_string()));
                continue;
            }
        };
        if event.timestamp_ms < latest_ms {
            summary.out_of_order += 1;
            sink.skipped(
                line_number,
                &SkipReason::OutOfOrder {
                    at_ms: event.timestamp_ms,
                    previous_ms: latest_ms,
                },
            );
            continue;
        }
        latest_ms = event.timestamp_ms;
        summary.events += 1;
        evidence.record(line_offset, &event);
        let id = i64::try_from(line_offset).unwrap_or(i64::MAX);
        let mut lookup = |id: i64| u64::try_from(id).ok().and_then(|id| evidence.fetch(id));
        engine.process(&event, id, &mut lookup, &mut found);
        for mut detection in found.drain(..) {
            // Evidence ids are offsets in the file here, not collector rows.
            for item in &mut detection.evidence {
                item.event_id = None;
            }
            summary.detections += 1;
            sink.detection(&detection)?;
        }
    }
    summary.evidence_missing = evidence.missing();
    Ok(summary)
}

/// Consumes `input` up to and including the next newline; returns how many
/// bytes that was.
fn skip_rest_of_line(input: &mut impl BufRead) -> std::io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return Ok(skipped);
        }
        let (used, done) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(index) => (index + 1, true),
            None => (buffer.len(), false),
        };
        input.consume(used);
        skipped += used as u64;
        if done {
            return Ok(skipped);
        }
    }
}

/// One line describing a detection for people, its time written as `time`
/// (the caller's zone).
pub fn describe(detection: &Detection, time: &str) -> String {
    format!(
        "{} {:<8} {} [{}] {} ({} events)",
        time,
        detection.severity.as_str(),
        detection.rule_id,
        detection.group_key,
        detection.title,
        detection.evidence.len()
    )
}

/// RFC 3339 in UTC, whole seconds, for a time in ms since the epoch.
pub fn format_time(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .ok()
        .and_then(|moment| {
            moment
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at_ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::rulefmt;
    use std::path::Path;

    /// Collects what a replay hands out.
    #[derive(Default)]
    struct Collected {
        detections: Vec<Detection>,
        skipped: Vec<(u64, String)>,
    }

    impl ReplaySink for Collected {
        fn detection(&mut self, detection: &Detection) -> std::io::Result<()> {
            self.detections.push(detection.clone());
            Ok(())
        }

        fn skipped(&mut self, line_number: u64, reason: &SkipReason) {
            self.skipped.push((line_number, reason.to_string()));
        }
    }

    fn engine(rules: &str) -> Engine {
        let rules = rulefmt::parse(Path::new("r.yaml"), rules).unwrap();
        Engine::new(rules, Calendar::default())
    }

    const ROOT_RULE: &str = "rules:\n  - {id: root, title: 'root from {{ $labels.src_ip }}', severity: high, match: {kind: ssh_login_accepted, user: root}}\n";

    const THRESHOLD_RULE: &str = "rules:\n  - {id: brute, title: brute, severity: high, match: {kind: ssh_login_failed}, group_by: [src_ip], max_groups: 100, threshold: {count: 3, window: 1m}}\n";

    fn failure(at_ms: i64, user: &str) -> String {
        format!(
            r#"{{"timestamp_ms":{at_ms},"host":"web1","source":"auth","kind":"ssh_login_failed","fields":{{"user":"{user}","src_ip":"203.0.113.9"}},"raw":"line of {user}"}}"#
        )
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number_and_the_rest_is_replayed() {
        let mut engine = engine(ROOT_RULE);
        let input = concat!(
            r#"{"timestamp_ms":1000,"host":"web1","source":"auth","kind":"ssh_login_accepted","fields":{"user":"root","src_ip":"203.0.113.9"}}"#,
            "\nnot json\n\n",
            r#"{"timestamp_ms":500,"host":"web1","source":"auth","kind":"ssh_login_accepted","fields":{"user":"root"}}"#,
            "\n",
            r#"{"timestamp_ms":2000,"host":"web2","source":"auth","kind":"ssh_login_accepted","fields":{"user":"root","src_ip":"198.51.100.1"}}"#,
            "\n"
        );
        let mut sink = Collected::default();
        let summary = replay(
            &mut engine,
            input.as_bytes(),
            &mut RecentEvents::new(10),
            &mut sink,
        )
        .unwrap();
        assert_eq!(summary.events, 2);
        assert_eq!((summary.not_events, summary.out_of_order), (1, 1));
        assert_eq!(summary.skipped(), 2);
        assert_eq!(sink.skipped[0].0, 2);
        assert!(sink.skipped[0].1.starts_with("not an event: "));
        assert_eq!(
            sink.skipped[1],
            (
                4,
                "out of time order: 1970-01-01T00:00:00Z is before the previous event's 1970-01-01T00:00:01Z".to_string()
            )
        );
        let titles: Vec<&str> = sink.detections.iter().map(|d| d.title.as_str()).collect();
        assert_eq!(titles, ["root from 203.0.113.9", "root from 198.51.100.1"]);
        assert_eq!(summary.detections, 2);
        assert_eq!(sink.detections[1].evidence[0].event.host, "web2");
        assert!(summary.to_string().contains(
            "2 events, 2 detections, 2 lines skipped (1 not events, 1 out of time order, 0 too long)"
        ));
        assert_eq!(format_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn evidence_is_read_back_from_the_file_by_offset() {
        let mut engine = engine(THRESHOLD_RULE);
        let text = [
            failure(1_000, "a"),
            failure(2_000, "b"),
            failure(3_000, "c"),
        ]
        .join("\n");
        let mut sink = Collected::default();
        let mut evidence = Reread::new(std::io::Cursor::new(text.clone().into_bytes()));
        let summary = replay(&mut engine, text.as_bytes(), &mut evidence, &mut sink).unwrap();
        assert_eq!(summary.detections, 1);
        let users: Vec<Option<&str>> = sink.detections[0]
            .evidence
            .iter()
            .map(|item| item.event.fields.user.as_deref())
            .collect();
        assert_eq!(users, [Some("a"), Some("b"), Some("c")]);
        assert!(
            sink.detections[0]
                .evidence
                .iter()
                .all(|item| item.event_id.is_none())
        );
        assert_eq!(sink.detections[0].evidence[0].event.raw, "line of a");
        assert_eq!(summary.evidence_missing, 0);
    }

    #[test]
    fn standard_input_keeps_only_recent_evidence_and_counts_what_it_lost() {
        let mut engine = engine(THRESHOLD_RULE);
        let text = [
            failure(1_000, "a"),
            failure(2_000, "b"),
            failure(3_000, "c"),
        ]
        .join("\n");
        let mut sink = Collected::default();
        let summary = replay(
            &mut engine,
            text.as_bytes(),
            &mut RecentEvents::new(2),
            &mut sink,
        )
        .unwrap();
        assert_eq!(sink.detections[0].evidence.len(), 2);
        assert_eq!(summary.evidence_missing, 1);
        assert!(
            summary
                .to_string()
                .contains("1 evidence events no longer in memory")
        );
    }

    #[test]
    fn a_line_over_the_cap_is_skipped_without_losing_the_next_one() {
        let mut engine = engine(ROOT_RULE);
        let mut text = vec![b'x'; MAX_LINE_BYTES + 10];
        text.push(b'\n');
        text.extend_from_slice(br#"{"timestamp_ms":1000,"host":"web1","source":"auth","kind":"ssh_login_accepted","fields":{"user":"root"}}"#);
        let mut sink = Collected::default();
        let mut evidence = Reread::new(std::io::Cursor::new(text.clone()));
        let summary = replay(&mut engine, &text[..], &mut evidence, &mut sink).unwrap();
        assert_eq!((summary.too_long, summary.events), (1, 1));
        assert_eq!(sink.skipped[0].0, 1);
        assert_eq!(sink.detections.len(), 1);
    }
}
