//! `rules replay`: recorded events (the agent's `replay` output, one JSON
//! event per line) through the rules, for backtesting a rule on last
//! month's logs before enabling it. Events are run in file order with their
//! own timestamps, as the collector would have seen them.

use std::io::BufRead;

use countywatch_wire::Event;

use crate::detection::Detection;
use crate::engine::Engine;

/// What a replay found.
#[derive(Debug, Default)]
pub struct ReplayOutcome {
    /// The detections, in the order they fired.
    pub detections: Vec<Detection>,
    /// Events read.
    pub events: u64,
    /// Lines that were not events, with their line numbers and reasons
    /// (the first few only).
    pub bad_lines: Vec<(u64, String)>,
    /// How many lines were not events.
    pub bad_line_count: u64,
}

/// Most bad lines described in the outcome.
const MAX_BAD_LINES_KEPT: usize = 10;

/// Runs every event of `input` through `engine`. Events are kept in memory
/// for the evidence of later detections.
pub fn replay(engine: &mut Engine, input: impl BufRead) -> std::io::Result<ReplayOutcome> {
    let mut outcome = ReplayOutcome::default();
    let mut events: Vec<Event> = Vec::new();
    let mut found = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        let number = index as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = match serde_json::from_str(&line) {
            Ok(event) => event,
            Err(error) => {
                outcome.bad_line_count += 1;
                if outcome.bad_lines.len() < MAX_BAD_LINES_KEPT {
                    outcome.bad_lines.push((number, error.to_string()));
                }
                continue;
            }
        };
        outcome.events += 1;
        let id = i64::try_from(events.len()).unwrap_or(i64::MAX);
        events.push(event);
        let Some(event) = events.last() else {
            continue;
        };
        let mut lookup = |id: i64| {
            usize::try_from(id)
                .ok()
                .and_then(|id| events.get(id))
                .cloned()
        };
        engine.process(event, id, &mut lookup, &mut found);
        outcome.detections.append(&mut found);
    }
    // Evidence ids are positions in the file here, not collector rows.
    for detection in &mut outcome.detections {
        for evidence in &mut detection.evidence {
            evidence.event_id = None;
        }
    }
    Ok(outcome)
}

/// One line describing a detection for people.
pub fn describe(detection: &Detection) -> String {
    format!(
        "{} {:<8} {} [{}] {} ({} events)",
        format_time(detection.at_ms),
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

    #[test]
    fn replays_lines_and_counts_bad_ones() {
        let rules = rulefmt::parse(
            Path::new("r.yaml"),
            "rules:\n  - {id: root, title: 'root from {{ $labels.src_ip }}', severity: high, match: {kind: ssh_login_accepted, user: root}}\n",
        )
        .unwrap();
        let mut engine = Engine::new(rules, Calendar::default());
        let input = concat!(
            r#"{"timestamp_ms":1000,"host":"web1","source":"auth","kind":"ssh_login_accepted","fields":{"user":"root","src_ip":"203.0.113.9"}}"#,
            "\nnot json\n",
            r#"{"timestamp_ms":2000,"host":"web1","source":"auth","kind":"ssh_login_accepted","fields":{"user":"alice"}}"#,
            "\n"
        );
        let outcome = replay(&mut engine, input.as_bytes()).unwrap();
        assert_eq!(outcome.events, 2);
        assert_eq!(outcome.bad_line_count, 1);
        assert_eq!(outcome.bad_lines[0].0, 2);
        assert_eq!(outcome.detections.len(), 1);
        assert_eq!(outcome.detections[0].title, "root from 203.0.113.9");
        assert_eq!(outcome.detections[0].evidence[0].event.host, "web1");
        assert_eq!(format_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }
}
