//! `countywatch-agent replay --source auth`: a whole authentication log
//! through [`LineParser`], one JSON event per line out, and a summary of
//! what was and was not understood.
//!
//! It lives here, not in the agent, because it is the hot path of replay
//! (docs/benchmarks.md, auth_replay): this crate is built for speed while
//! the agent is built for size (its resident memory is mostly its own
//! code, docs/benchmarks.md, agent_footprint). The reader and writer are
//! trait objects so that the loop and the JSON encoding are compiled here,
//! not in the calling crate. It does no IO of its own: it reads and writes
//! only through what the caller passes.

use std::io::{Read, Write};

use countywatch_wire::Event;

use crate::auth_line::{LineParser, ParseStats};
use crate::line_splitter::LineSplitter;
use crate::unknown_lines::UnknownLines;

/// What `replay` prints on stderr at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// The parser's counts.
    pub stats: ParseStats,
    /// The lines not understood, by shape.
    pub unknown: UnknownLines,
}

/// Most shapes of not-understood lines the summary lists.
const MAX_SHAPES_PRINTED: usize = 50;

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stats = &self.stats;
        let events: u64 = stats.events.values().sum();
        writeln!(f, "lines read: {}", stats.lines)?;
        writeln!(f, "events: {events}")?;
        for (kind, count) in &stats.events {
            writeln!(f, "  {}: {count}", kind.as_str())?;
        }
        writeln!(
            f,
            "lines ignored (understood, no event): {}",
            stats.lines_ignored
        )?;
        writeln!(f, "lines not understood: {}", stats.lines_unknown)?;
        let shapes = self.unknown.by_count();
        for (shape, found) in shapes.iter().take(MAX_SHAPES_PRINTED) {
            writeln!(f, "  {:>7}  {shape}", found.lines)?;
            for sample in &found.samples {
                writeln!(f, "           e.g. {sample}")?;
            }
        }
        if shapes.len() > MAX_SHAPES_PRINTED {
            writeln!(f, "  ({} more shapes)", shapes.len() - MAX_SHAPES_PRINTED)?;
        }
        writeln!(
            f,
            "events stamped in the future (> 5 min), stamped now: {}",
            stats.events_clock_skew
        )?;
        write!(f, "lines truncated: {}", stats.lines_truncated)
    }
}

/// How `replay` reads a log.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Lines are capped at this many bytes, like the live source.
    pub max_line: usize,
    /// "Now", which places year-less timestamps.
    pub now_ms: i64,
    /// The zone of zone-less timestamps.
    pub zone: jiff::tz::TimeZone,
    /// Examples printed per shape of not-understood lines.
    pub unknown_samples: usize,
}

/// Reads a whole log through the parsers and writes one JSON event per line
/// to `out`.
pub fn replay(
    input: &mut dyn Read,
    out: &mut dyn Write,
    options: &ReplayOptions,
) -> std::io::Result<ReplaySummary> {
    let (max_line, now_ms) = (options.max_line, options.now_ms);
    let mut parser = LineParser::new(options.zone.clone()).count_unknown(options.unknown_samples);
    let mut splitter = LineSplitter::new(max_line);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut filled = 0;
    let mut events = Vec::new();
    let mut json = Vec::with_capacity(1024);
    let mut write_error = None;
    loop {
        if filled == buffer.len() {
            // Only a partial line shorter than the cap is ever kept, so
            // this grows at most once.
            buffer.resize(buffer.len() * 2, 0);
        }
        let read = match input.read(&mut buffer[filled..]) {
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let at_end = read == 0;
        filled += read;
        let mut emit = |line: &[u8], truncated: bool| {
            let text = String::from_utf8_lossy(line);
            parser.parse_line(&text, truncated, now_ms, &mut events);
            for event in events.drain(..) {
                if write_error.is_none()
                    && let Err(error) = write_event(out, &mut json, &event)
                {
                    write_error = Some(error);
                }
            }
            write_error.is_none()
        };
        let consumed = splitter.split(&buffer[..filled], &mut emit);
        if at_end {
            if consumed < filled && !splitter.skipping {
                // The last line has no newline; it is still a line.
                emit(&buffer[consumed..filled], false);
            }
            break;
        }
        buffer.copy_within(consumed..filled, 0);
        filled -= consumed;
        if let Some(error) = write_error.take() {
            return Err(error);
        }
    }
    if let Some(error) = write_error {
        return Err(error);
    }
    out.flush()?;
    Ok(ReplaySummary {
        stats: parser.stats,
        unknown: parser.unknown.unwrap_or_default(),
    })
}

/// Serialises into a reused buffer and writes it in one call, which is
/// markedly faster than serde_json's many small writes to the output.
fn write_event(out: &mut dyn Write, json: &mut Vec<u8>, event: &Event) -> std::io::Result<()> {
    json.clear();
    serde_json::to_writer(&mut *json, event)?;
    json.push(b'\n');
    out.write_all(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T12:00:00Z.
    const NOW: i64 = 1_795_867_200_000;

    /// Four lines in OpenSSH's and rsyslog's real formats: two failures
    /// (one repeated five times), a session line that is no event, an
    /// accepted key.
    const AUTH_LOG: &str = "\
Nov 28 01:00:12 web-01 sshd[1002]: Failed password for root from 203.0.113.5 port 40002 ssh2
Nov 28 01:00:15 web-01 sshd[1002]: message repeated 5 times: [ Failed password for root from 203.0.113.5 port 40002 ssh2]
Nov 28 01:00:20 web-01 sshd[1003]: pam_unix(sshd:session): session closed for user root
Nov 28 01:05:00 web-01 sshd[1004]: Accepted publickey for deploy from 192.0.2.10 port 50000 ssh2: ED25519 SHA256:abc
";

    #[test]
    fn replay_prints_json_lines_and_counts_everything() {
        let mut log = AUTH_LOG.as_bytes().to_vec();
        log.extend_from_slice(b"\xff\xfe binary garbage\n");
        log.extend_from_slice(&vec![b'x'; 100_000]);
        log.extend_from_slice(
            b"\nNov 28 03:00:00 web-01 sshd[1]: Invalid user last from 192.0.2.1 port 1",
        );
        let mut out = Vec::new();
        let options = ReplayOptions {
            max_line: 16 * 1024,
            now_ms: NOW,
            zone: jiff::tz::TimeZone::UTC,
            unknown_samples: 1,
        };
        let summary = replay(&mut &log[..], &mut out, &options).unwrap();
        let text = String::from_utf8(out).unwrap();
        let events: Vec<Event> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(events.len(), 8);
        assert_eq!(events[7].fields.user.as_deref(), Some("last"));
        assert_eq!(summary.stats.lines, 7);
        assert_eq!(summary.stats.lines_truncated, 1);
        assert_eq!(summary.stats.lines_unknown, 2);
        let printed = summary.to_string();
        assert!(printed.contains("lines read: 7"), "{printed}");
        assert!(printed.contains("  ssh_login_failed: 6"), "{printed}");
        assert!(printed.contains("lines not understood: 2"), "{printed}");
        assert!(
            printed.contains(
                "        2  (no syslog prefix)\n           e.g. \u{fffd}\u{fffd} binary garbage\n"
            ),
            "{printed}"
        );
    }

    #[test]
    fn replay_reads_zone_less_times_in_the_given_zone() {
        let line = "Nov 28 09:00:01 web-01 sshd[1001]: Failed password for root from 203.0.113.5 port 40000 ssh2\n";
        let stamp = |zone: &str| {
            let options = ReplayOptions {
                max_line: 1024,
                now_ms: NOW,
                zone: jiff::tz::TimeZone::get(zone).unwrap(),
                unknown_samples: 0,
            };
            let mut out = Vec::new();
            replay(&mut line.as_bytes(), &mut out, &options).unwrap();
            serde_json::from_slice::<Event>(&out).unwrap().timestamp_ms
        };
        assert_eq!(stamp("UTC") - stamp("Asia/Shanghai"), 8 * 3_600_000);
        assert_eq!(stamp("Asia/Shanghai"), NOW - 11 * 3_600_000 + 1_000);
    }
}
