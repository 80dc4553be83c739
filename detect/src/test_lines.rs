//! Raw log lines in detection-rule tests (`lines:`): each line goes through
//! the parser the agent would run on it (`countywatch-parse`), so a test
//! shows that a rule fires on what sshd or a switch really writes, not only
//! on hand-built events.
//!
//! ```yaml
//! lines:
//!   - {at: 30s, every: 5s, repeat: 10, parser: auth_log, host: web1,
//!      text: "sshd[123]: Failed password for invalid user admin{n} from 203.0.113.9 port 22 ssh2"}
//!   - {at: 2m, parser: syslog, device: 192.0.2.1,
//!      text: "<189>%SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.0.0.1)"}
//! ```
//!
//! Time: an event's time is the test's `at` (plus `every` per repetition),
//! never a date in the text. With `parser: auth_log`, `text` is what follows
//! the syslog timestamp and host name (`program[pid]: message`); the runner
//! writes the line as rsyslog's ISO-8601 file format would, with `at` in UTC
//! and `host`, and parses the whole line. With `parser: syslog`, `text` is
//! the message as the device sends it (RFC 3164 or RFC 5424 with `<PRI>`, or
//! Cisco's bare `<PRI>seq: *stamp: %TAG: ...`); like the agent's receiver,
//! the event is stamped with its arrival (`at`), not the header's time,
//! since device clocks are often unset.
//!
//! A line that makes no event is a problem with the file, line and column
//! of its entry: a test author wants to know, not a test that passes
//! because its input silently vanished. A device message that no vendor
//! parser knows becomes a plain `syslog_message` in the agent; here that is
//! a problem too unless the entry says `kind: syslog_message`. `kind:`, when
//! given, is checked against what the parser made.

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_parse::auth_line::LineParser;
use countywatch_parse::syslog_message::message_to_event;
use countywatch_wire::{Event, EventKind};
use serde::Deserialize;

/// The host an auth log line is from when the entry names none (the same
/// default as `events:`).
pub const DEFAULT_HOST: &str = "web1";

/// The sending device of a `parser: syslog` line when the entry names none
/// (TEST-NET-1, RFC 5737).
pub const DEFAULT_DEVICE: &str = "192.0.2.1";

/// Which of the agent's parsers reads a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineParserName {
    /// An authentication log line (`/var/log/auth.log`, `/var/log/secure`),
    /// as the agent's `sources.auth_log` reads it.
    AuthLog,
    /// A syslog message from a network device, as the agent's
    /// `sources.syslog` receiver reads it.
    Syslog,
}

impl LineParserName {
    fn as_str(self) -> &'static str {
        match self {
            LineParserName::AuthLog => "auth_log",
            LineParserName::Syslog => "syslog",
        }
    }
}

/// Input lines: one, or a series of `repeat` every `every`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestLine {
    /// Time after the start (`0s` when absent); the events' time.
    #[serde(default)]
    pub at: Option<Spanned<String>>,
    /// How many lines (1 when absent).
    #[serde(default)]
    pub repeat: Option<u32>,
    /// Time between repetitions (`1s` when absent).
    #[serde(default)]
    pub every: Option<Spanned<String>>,
    /// The parser: `auth_log` or `syslog`.
    pub parser: LineParserName,
    /// The host the agent runs on (`web1` when absent): for `auth_log`, the
    /// host name in the line; for `syslog`, the agent that received it.
    #[serde(default)]
    pub host: Option<String>,
    /// The device that sent a `syslog` line (`192.0.2.1` when absent); the
    /// event's `device` field.
    #[serde(default)]
    pub device: Option<String>,
    /// The line; `{n}` is replaced by the repetition number (0, 1, ...).
    pub text: String,
    /// The kind the line must parse to, when given.
    #[serde(default)]
    pub kind: Option<EventKind>,
}

/// Parses the lines of `spec` into events at `start_ms + at (+ every * n)`,
/// appended to `out`. Problems go to `problems` at the entry's position;
/// a series stops at its first bad line.
pub fn build(
    problems: &mut Problems,
    test_name: &str,
    spec: &Spanned<TestLine>,
    start_ms: i64,
    at_ms: i64,
    every_ms: i64,
    out: &mut Vec<Event>,
) {
    let line = &spec.value;
    if line.parser == LineParserName::AuthLog && line.device.is_some() {
        problems.at(
            spec,
            format!("test {test_name:?}: `device` is for `parser: syslog` lines; an auth_log line's host is `host`"),
        );
        return;
    }
    let mut auth_parser = LineParser::default();
    let mut events = Vec::new();
    for n in 0..line.repeat.unwrap_or(1) {
        let time_ms = start_ms + at_ms + every_ms * i64::from(n);
        let number = n.to_string();
        let text = line.text.replace("{n}", &number);
        let host = line
            .host
            .as_deref()
            .unwrap_or(DEFAULT_HOST)
            .replace("{n}", &number);
        events.clear();
        let made = match line.parser {
            LineParserName::AuthLog => {
                auth_log_events(&mut auth_parser, &host, &text, time_ms, &mut events)
            }
            LineParserName::Syslog => {
                let device = line
                    .device
                    .as_deref()
                    .unwrap_or(DEFAULT_DEVICE)
                    .replace("{n}", &number);
                syslog_event(&host, &device, &text, time_ms, line.kind, &mut events)
            }
        };
        let problem = match made {
            Err(problem) => Some(problem),
            Ok(()) => line.kind.and_then(|wanted| {
                events
                    .iter()
                    .find(|event| event.kind != wanted)
                    .map(|event| LineRefusal::WrongKind {
                        made: event.kind.as_str(),
                        wanted: wanted.as_str(),
                    })
            }),
        };
        if let Some(problem) = problem {
            problems.at(
                spec,
                format!(
                    "test {test_name:?}: {} line {text:?} {problem}",
                    line.parser.as_str()
                ),
            );
            return;
        }
        out.append(&mut events);
    }
}

/// Why a test line does not make the event the test expects; the text
/// follows `test "name": parser line "text"` in the check's output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum LineRefusal {
    /// A host that is not one word.
    #[error("has host {host:?}, which a syslog line cannot carry (one word)")]
    HostNotOneWord {
        /// The host as written.
        host: String,
    },
    /// The auth parser took the line as bookkeeping.
    #[error("is understood by the parser but makes no event (bookkeeping such as a session line)")]
    NoEvent,
    /// The auth parser does not understand the line.
    #[error(
        "is not understood by the parser (`text` is what follows the timestamp and host name, like \"sshd[123]: Failed password for root from 203.0.113.9 port 22 ssh2\")"
    )]
    NotUnderstood,
    /// No vendor parser understands the syslog message.
    #[error(
        "is understood by no vendor parser (the agent would make a plain syslog_message of it; say `kind: syslog_message` if the test means that)"
    )]
    NoVendorParser,
    /// The line makes an event of another kind than the test names.
    #[error("parses to {made}, not {wanted}")]
    WrongKind {
        /// The kind the parser made.
        made: &'static str,
        /// The kind the test names.
        wanted: &'static str,
    },
}

/// Writes `text` as a whole auth log line (ISO-8601 time in UTC, host) and
/// parses it as the agent does.
fn auth_log_events(
    parser: &mut LineParser,
    host: &str,
    text: &str,
    time_ms: i64,
    out: &mut Vec<Event>,
) -> Result<(), LineRefusal> {
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(LineRefusal::HostNotOneWord {
            host: host.to_string(),
        });
    }
    let line = format!("{} {host} {text}", iso8601_utc(time_ms));
    let before = parser.stats.clone();
    parser.parse_line(&line, false, time_ms, out);
    if !out.is_empty() {
        // The line's own stamp is `time_ms` already; set it anyway so the
        // test's `at` is the time whatever the parser did with the text.
        for event in out.iter_mut() {
            event.timestamp_ms = time_ms;
        }
        return Ok(());
    }
    if parser.stats.lines_ignored > before.lines_ignored {
        Err(LineRefusal::NoEvent)
    } else {
        Err(LineRefusal::NotUnderstood)
    }
}

/// Turns `text` into the event the agent's syslog receiver would make of
/// it, received at `time_ms` from `device` by the agent on `host`.
fn syslog_event(
    host: &str,
    device: &str,
    text: &str,
    time_ms: i64,
    wanted: Option<EventKind>,
    out: &mut Vec<Event>,
) -> Result<(), LineRefusal> {
    let (mut event, _lossy) = message_to_event(text.as_bytes(), device, time_ms, time_ms);
    if event.kind == EventKind::SyslogMessage && wanted != Some(EventKind::SyslogMessage) {
        return Err(LineRefusal::NoVendorParser);
    }
    event.host = host.to_string();
    out.push(event);
    Ok(())
}

/// `2026-11-02T02:00:30.000Z`: rsyslog's ISO-8601 stamp of `time_ms`.
fn iso8601_utc(time_ms: i64) -> String {
    let Ok(moment) = time::OffsetDateTime::from_unix_timestamp(time_ms.div_euclid(1000)) else {
        return String::new();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        moment.year(),
        u8::from(moment.month()),
        moment.day(),
        moment.hour(),
        moment.minute(),
        moment.second(),
        time_ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_config::config_file;
    use std::path::Path;

    fn lines(yaml: &str) -> Result<Vec<Event>, String> {
        #[derive(Deserialize)]
        struct Lines {
            lines: Vec<Spanned<TestLine>>,
        }
        let path = Path::new("t.test.yaml");
        let parsed: Lines = config_file::parse(path, yaml).map_err(|error| error.to_string())?;
        let start = crate::unittest::parse_time(crate::unittest::DEFAULT_START).unwrap();
        let mut problems = Problems::new(path);
        let mut events = Vec::new();
        for spec in &parsed.lines {
            let at = spec.value.at.as_ref().map_or(0, |text| {
                countywatch_config::duration::parse(&text.value)
                    .map_or(0, |value| value.as_millis() as i64)
            });
            let every = spec.value.every.as_ref().map_or(1000, |text| {
                countywatch_config::duration::parse(&text.value)
                    .map_or(0, |value| value.as_millis() as i64)
            });
            build(&mut problems, "t", spec, start, at, every, &mut events);
        }
        problems
            .into_result()
            .map_err(|problems| problems.to_string())?;
        Ok(events)
    }

    /// Monday 2026-11-02 10:00 in Shanghai, the tests' default start.
    const START: i64 = 1_793_584_800_000;

    #[test]
    fn auth_log_lines_become_events_at_the_tests_time() {
        assert_eq!(
            crate::unittest::parse_time(crate::unittest::DEFAULT_START),
            Some(START)
        );
        let events = lines(
            "lines:\n  - {at: 30s, every: 5s, repeat: 3, parser: auth_log, host: \"db{n}\", text: \"sshd[123]: Failed password for invalid user admin{n} from 203.0.113.9 port 22 ssh2\"}\n",
        )
        .unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].kind, EventKind::SshLoginFailed);
        assert_eq!(events[2].timestamp_ms, START + 30_000 + 10_000);
        assert_eq!(events[2].host, "db2");
        assert_eq!(events[2].fields.user.as_deref(), Some("admin2"));
        assert_eq!(
            events[2].fields.src_ip,
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(events[2].fields.process.as_deref(), Some("sshd"));
        assert!(
            events[0]
                .raw
                .starts_with("2026-11-02T02:00:30.000Z db0 sshd[123]: Failed"),
            "{}",
            events[0].raw
        );
    }

    #[test]
    fn rsyslog_repeats_expand_like_in_the_agent() {
        let events = lines(
            "lines:\n  - {parser: auth_log, text: \"sshd[1]: message repeated 4 times: [ Failed password for root from 203.0.113.9 port 22 ssh2]\"}\n",
        )
        .unwrap();
        assert_eq!(events.len(), 4);
        assert!(events.iter().all(|event| event.timestamp_ms == START));
    }

    #[test]
    fn device_lines_are_stamped_on_arrival_from_their_device() {
        let events = lines(
            "lines:\n  - {at: 1m, parser: syslog, device: \"sw-{n}\", text: \"<188>Nov 28 2026 01:02:03-08:00 HUAWEI %%01SSH/5/SSH_USER_LOGIN_FAIL(s)[12]:The SSH user failed to login. (ServiceType=stelnet, FailedReason=Password authentication failed, UserName=admin, UserAddress=203.0.113.5, LocalAddress=192.0.2.1, VPNInstanceName=_public_)\"}\n  - {parser: syslog, text: \"<13>Nov 28 01:02:03 h app: hello\", kind: syslog_message}\n",
        )
        .unwrap();
        assert_eq!(events[0].kind, EventKind::DeviceLoginFailed);
        assert_eq!(events[0].timestamp_ms, START + 60_000);
        assert_eq!(events[0].fields.device.as_deref(), Some("sw-0"));
        assert_eq!(events[0].host, DEFAULT_HOST);
        assert_eq!(events[1].kind, EventKind::SyslogMessage);
        assert_eq!(events[1].fields.device.as_deref(), Some(DEFAULT_DEVICE));
    }

    #[test]
    fn lines_that_make_no_event_are_problems_with_their_position() {
        let cases = [
            (
                "lines:\n  - {parser: auth_log, text: \"Nov 28 01:02:03 web1 sshd[1]: Failed password for root from 203.0.113.9 port 22 ssh2\"}\n",
                "t.test.yaml:2:5: test \"t\": auth_log line \"Nov 28 01:02:03 web1 sshd[1]: Failed password for root from 203.0.113.9 port 22 ssh2\" is not understood by the parser",
            ),
            (
                "lines:\n  - {parser: auth_log, text: \"sshd[1]: pam_unix(sshd:session): session closed for user root\"}\n",
                "makes no event",
            ),
            (
                "lines:\n  - {parser: syslog, text: \"<13>Nov 28 01:02:03 h app: hello\"}\n",
                "understood by no vendor parser",
            ),
            (
                "lines:\n  - {parser: auth_log, kind: ssh_login_accepted, text: \"sshd[1]: Failed password for root from 203.0.113.9 port 22 ssh2\"}\n",
                "parses to ssh_login_failed, not ssh_login_accepted",
            ),
            (
                "lines:\n  - {parser: auth_log, device: sw1, text: \"sshd[1]: x\"}\n",
                "`device` is for `parser: syslog` lines",
            ),
            (
                "lines:\n  - {parser: auth_log, host: \"a b\", text: \"sshd[1]: x\"}\n",
                "one word",
            ),
        ];
        for (yaml, expected) in cases {
            let error = lines(yaml).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let error = lines("lines:\n  - {parser: journald, text: x}\n").unwrap_err();
        assert!(error.contains("t.test.yaml:2"), "{error}");
    }
}
