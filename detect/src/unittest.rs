//! Detection-rule unit tests: a file names rule files, and each test gives
//! input events at times relative to a start and the exact detections
//! expected, so every rule can be shown to fire and not to fire, offline.
//!
//! ```yaml
//! rule_files: [ssh.yaml]
//! tests:
//!   - name: ten failures from one address fire
//!     events:
//!       - {at: 0s, every: 5s, repeat: 10, kind: ssh_login_failed,
//!          fields: {src_ip: 203.0.113.9, user: "user{n}"}}
//!     expect:
//!       - {rule: ssh_brute_force, labels: {src_ip: 203.0.113.9}}
//! ```
//!
//! `{n}` in a string is replaced by the repetition number (0, 1, ...). An
//! event's `source` defaults to the one that emits its kind, `host` to
//! `web1`. A test may also give raw log lines (`lines:`) with the parser
//! that reads them (`auth_log`, `syslog`); [`crate::test_lines`] turns them
//! into events at the test's times, and a line that makes no event is a
//! problem at its position. `expect` lists every detection the test's events raise: one
//! that no expectation matches fails the test, and so does an expectation
//! matched a number of times other than its `count` (1 by default).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use countywatch_config::config_file::{self, Problems, Spanned};
use countywatch_config::duration;
use countywatch_wire::{Event, EventKind, EventSource};
use serde::Deserialize;

use crate::calendar::{Calendar, CalendarConfig};
use crate::detection::Detection;
use crate::engine::Engine;
use crate::rulefmt;
use crate::test_lines::{self, TestLine};

/// The default start of a test: Monday 2026-11-02 10:00 in Shanghai, inside
/// the default working hours.
pub const DEFAULT_START: &str = "2026-11-02T10:00:00+08:00";

/// A test file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files, relative to the test file.
    pub rule_files: Vec<String>,
    /// The calendar for `working_hours`; the default when absent.
    #[serde(default)]
    pub calendar: Option<CalendarConfig>,
    /// When time 0 is, RFC 3339; [`DEFAULT_START`] when absent.
    #[serde(default)]
    pub start: Option<Spanned<String>>,
    /// The tests.
    pub tests: Vec<Spanned<TestCase>>,
}

/// One test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the test shows.
    pub name: String,
    /// Overrides the file's start.
    #[serde(default)]
    pub start: Option<Spanned<String>>,
    /// The input events, in any order (they are sorted by time).
    #[serde(default)]
    pub events: Vec<Spanned<TestEvent>>,
    /// Raw log lines through the agent's parsers, in any order; merged with
    /// `events` by time.
    #[serde(default)]
    pub lines: Vec<Spanned<TestLine>>,
    /// Move the clock to this long after the start once the events are in
    /// (for `absence` rules).
    #[serde(default)]
    pub advance: Option<Spanned<String>>,
    /// Every detection expected; empty means none.
    #[serde(default)]
    pub expect: Vec<Spanned<Expectation>>,
}

/// Input events: one, or a series of `repeat` every `every`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestEvent {
    /// Time after the start (`0s` when absent).
    #[serde(default)]
    pub at: Option<Spanned<String>>,
    /// How many events (1 when absent).
    #[serde(default)]
    pub repeat: Option<u32>,
    /// Time between repetitions (`1s` when absent).
    #[serde(default)]
    pub every: Option<Spanned<String>>,
    /// The event kind.
    pub kind: EventKind,
    /// The source; the one that emits `kind` when absent.
    #[serde(default)]
    pub source: Option<EventSource>,
    /// The host (`web1` when absent).
    #[serde(default)]
    pub host: Option<String>,
    /// The event's fields, as in the wire format; `{n}` is substituted.
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// The raw line.
    #[serde(default)]
    pub raw: Option<String>,
}

/// One expected detection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The rule id.
    pub rule: String,
    /// Labels the detection must have (others are not checked).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The exact title, when given.
    #[serde(default)]
    pub title: Option<String>,
    /// How many detections this matches (1 when absent).
    #[serde(default)]
    pub count: Option<usize>,
    /// How many evidence events the detection carries, when given.
    #[serde(default)]
    pub evidence: Option<usize>,
}

/// The outcome of one test file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    /// Whether every test passed.
    pub passed: bool,
    /// The report to print.
    pub report: String,
    /// Tests run.
    pub tests: usize,
}

/// The source that emits events of `kind`.
pub fn default_source(kind: EventKind) -> EventSource {
    let name = kind.as_str();
    if name.starts_with("file_") {
        EventSource::Fim
    } else if name.starts_with("port_") {
        EventSource::Ports
    } else if matches!(
        kind,
        EventKind::SpoolOverflow | EventKind::SpoolDamaged | EventKind::AgentSilent
    ) {
        EventSource::Agent
    } else if matches!(
        kind,
        EventKind::DeviceLoginFailed
            | EventKind::DeviceLoginSucceeded
            | EventKind::DeviceConfigChanged
            | EventKind::SyslogMessage
    ) {
        EventSource::Syslog
    } else if name.starts_with("interface_") || name.starts_with("device_") {
        EventSource::Snmp
    } else {
        EventSource::Auth
    }
}

/// Parses an RFC 3339 time (`2026-11-02T10:00:00+08:00`, `...Z`) to ms.
pub fn parse_time(text: &str) -> Option<i64> {
    let moment =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(moment.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Whether a file looks like a detection test file rather than a promtool
/// one: its tests have `events`, `lines` or `expect` instead of
/// `input_series`.
pub fn looks_like_test_file(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start().trim_start_matches("- ");
        line.starts_with("events:") || line.starts_with("lines:") || line.starts_with("expect:")
    }) && !text.contains("input_series")
}

/// Runs every test of one file.
pub fn run_file(path: &Path) -> TestOutcome {
    let mut report = String::new();
    let _ = writeln!(report, "Unit Testing: {}", path.display());
    let fail = |mut report: String, message: String| {
        let _ = writeln!(report, "  FAILED:\n{message}");
        TestOutcome {
            passed: false,
            report,
            tests: 0,
        }
    };
    let file: TestFile = match config_file::load(path) {
        Ok(file) => file,
        Err(problems) => return fail(report, problems.to_string()),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let rule_paths: Vec<PathBuf> = file.rule_files.iter().map(|name| base.join(name)).collect();
    let rules = match rulefmt::load_all(&rule_paths) {
        Ok(rules) => rules,
        Err(failures) => {
            let text = failures
                .iter()
                .map(|problems| problems.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            return fail(report, text);
        }
    };
    let calendar = match file.calendar.as_ref().map(Calendar::new).transpose() {
        Ok(calendar) => calendar.unwrap_or_default(),
        Err(problems) => {
            return fail(report, format!("{}: calendar: {problems}", path.display()));
        }
    };
    let mut problems = Problems::new(path);
    let mut failures = Vec::new();
    for test in &file.tests {
        let start = test.value.start.as_ref().or(file.start.as_ref());
        let start_ms = match start {
            Some(text) => parse_time(&text.value).unwrap_or_else(|| {
                problems.at(
                    text,
                    format!(
                        "start {:?} is not an RFC 3339 time like {DEFAULT_START}",
                        text.value
                    ),
                );
                0
            }),
            None => parse_time(DEFAULT_START).unwrap_or(0),
        };
        let events = build_events(&mut problems, &test.value, start_ms);
        let advance_to = test
            .value
            .advance
            .as_ref()
            .and_then(|text| offset(&mut problems, text))
            .map(|offset| start_ms + offset);
        if !problems.is_empty() {
            continue;
        }
        let mut engine = Engine::new(rules.clone(), calendar.clone());
        let detections = run_events(&mut engine, &events, advance_to);
        failures.extend(
            compare(&test.value, &detections)
                .into_iter()
                .map(|message| (test.value.name.clone(), message)),
        );
    }
    if let Err(problems) = problems.into_result() {
        return fail(report, problems.to_string());
    }
    let tests = file.tests.len();
    if failures.is_empty() {
        let _ = writeln!(report, "  SUCCESS ({tests} tests)");
        TestOutcome {
            passed: true,
            report,
            tests,
        }
    } else {
        let mut text = String::new();
        for (name, message) in failures {
            let _ = writeln!(text, "    {name}: {message}");
        }
        fail(report, text)
    }
}

fn offset(problems: &mut Problems, text: &Spanned<String>) -> Option<i64> {
    match duration::parse(&text.value) {
        Ok(value) => Some(i64::try_from(value.as_millis()).unwrap_or(i64::MAX)),
        Err(error) => {
            problems.at(text, error.to_string());
            None
        }
    }
}

fn substitute(value: &serde_json::Value, n: u32) -> serde_json::Value {
    match value {
        serde_json::Value::String(text) => {
            serde_json::Value::String(text.replace("{n}", &n.to_string()))
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|item| substitute(item, n)).collect())
        }
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), substitute(item, n)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn build_events(problems: &mut Problems, test: &TestCase, start_ms: i64) -> Vec<Event> {
    let mut events = Vec::new();
    for spec in &test.events {
        let raw = &spec.value;
        let at = raw
            .at
            .as_ref()
            .map_or(Some(0), |text| offset(problems, text));
        let every = raw
            .every
            .as_ref()
            .map_or(Some(1000), |text| offset(problems, text));
        let (Some(at), Some(every)) = (at, every) else {
            continue;
        };
        let fields = serde_json::Value::Object(
            raw.fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        for n in 0..raw.repeat.unwrap_or(1) {
            let json = serde_json::json!({
                "timestamp_ms": start_ms + at + every * i64::from(n),
                "host": raw.host.clone().unwrap_or_else(|| "web1".to_string()),
                "source": raw.source.unwrap_or_else(|| default_source(raw.kind)),
                "kind": raw.kind,
                "fields": substitute(&fields, n),
                "raw": raw.raw.as_deref().map(|text| text.replace("{n}", &n.to_string())).unwrap_or_default(),
            });
            match serde_json::from_value::<Event>(json) {
                Ok(event) => events.push(event),
                Err(error) => {
                    problems.at(
                        spec,
                        format!("test {:?}: not a valid event: {error}", test.name),
                    );
                    break;
                }
            }
        }
    }
    for spec in &test.lines {
        let at = spec
            .value
            .at
            .as_ref()
            .map_or(Some(0), |text| offset(problems, text));
        let every = spec
            .value
            .every
            .as_ref()
            .map_or(Some(1000), |text| offset(problems, text));
        if let (Some(at), Some(every)) = (at, every) {
            test_lines::build(problems, &test.name, spec, start_ms, at, every, &mut events);
        }
    }
    // Stable: events at the same time keep their written order (events
    // before lines).
    events.sort_by_key(|event| event.timestamp_ms);
    events
}

/// Runs events (ids are their positions) and then the clock to
/// `advance_to`; returns every detection.
pub fn run_events(
    engine: &mut Engine,
    events: &[Event],
    advance_to: Option<i64>,
) -> Vec<Detection> {
    let mut detections = Vec::new();
    let mut lookup = |id: i64| {
        usize::try_from(id)
            .ok()
            .and_then(|id| events.get(id))
            .cloned()
    };
    for (index, event) in events.iter().enumerate() {
        engine.process(
            event,
            i64::try_from(index).unwrap_or(i64::MAX),
            &mut lookup,
            &mut detections,
        );
    }
    if let Some(now) = advance_to {
        // Step through the time so that what is due fires at its moment.
        let mut clock = events.last().map_or(now, |event| event.timestamp_ms);
        while clock < now {
            clock = (clock + 60_000).min(now);
            engine.advance(clock, &mut lookup, &mut detections);
        }
    }
    detections
}

fn compare(test: &TestCase, detections: &[Detection]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut matched = vec![0usize; test.expect.len()];
    for detection in detections {
        let found = test.expect.iter().position(|expected| {
            let expected = &expected.value;
            expected.rule == detection.rule_id
                && expected
                    .labels
                    .iter()
                    .all(|(name, value)| detection.labels.get(name) == Some(value))
                && expected
                    .title
                    .as_ref()
                    .is_none_or(|title| *title == detection.title)
                && expected
                    .evidence
                    .is_none_or(|count| count == detection.evidence.len())
        });
        match found {
            Some(index) => matched[index] += 1,
            None => failures.push(format!(
                "unexpected detection {} [{}] {:?} with {} evidence events",
                detection.rule_id,
                detection.group_key,
                detection.title,
                detection.evidence.len()
            )),
        }
    }
    for (expected, got) in test.expect.iter().zip(matched) {
        let wanted = expected.value.count.unwrap_or(1);
        if got != wanted {
            failures.push(format!(
                "expected {wanted} detection(s) of {} with labels {:?}, got {got}",
                expected.value.rule, expected.value.labels
            ));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_offsets() {
        assert_eq!(parse_time("1970-01-01T08:00:00+08:00"), Some(0));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_time("nonsense"), None);
    }

    #[test]
    fn sources_follow_kinds() {
        assert_eq!(default_source(EventKind::FileChanged), EventSource::Fim);
        assert_eq!(default_source(EventKind::InterfaceDown), EventSource::Snmp);
        assert_eq!(
            default_source(EventKind::DeviceConfigChanged),
            EventSource::Syslog
        );
        assert_eq!(default_source(EventKind::SshLoginFailed), EventSource::Auth);
        assert_eq!(default_source(EventKind::AgentSilent), EventSource::Agent);
    }

    #[test]
    fn test_files_are_told_from_promtool_ones() {
        assert!(looks_like_test_file(
            "rule_files: [a.yaml]\ntests:\n  - name: x\n    events: []\n"
        ));
        assert!(looks_like_test_file(
            "rule_files: [a.yaml]\ntests:\n  - name: x\n    lines: []\n"
        ));
        assert!(!looks_like_test_file(
            "rule_files: [a.yaml]\ntests:\n  - interval: 1m\n    input_series: []\n"
        ));
    }
}
