//! The authentication log source: tails `/var/log/auth.log` or
//! `/var/log/secure` (or reads the journal) and turns new lines into
//! security events with `countywatch_parse`'s [`LineParser`]. This is the
//! thin IO part: one [`Tailer`] per configured file (`countywatch-agent
//! replay` over a whole file is `countywatch_parse::auth_replay`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use countywatch_parse::auth_line::LineParser;
use countywatch_wire::{Event, MAX_RAW_BYTES};

use super::tail::{Position, Tailer};

/// The live source: tails every configured file, or reads the journal.
pub struct AuthSource {
    /// One tailer per configured path.
    tailers: Vec<Tailer>,
    /// The journal, when it replaces the files.
    pub journal: Option<super::journal::JournalSource>,
    /// The parser and its counts.
    pub parser: LineParser,
    /// Cap on line length.
    max_line: usize,
}

impl AuthSource {
    /// Tails `paths`, resuming from the persisted `positions`. Files met for
    /// the first time start at their end unless `read_existing`.
    pub fn new(
        paths: &[PathBuf],
        positions: &BTreeMap<PathBuf, Position>,
        read_existing: bool,
        max_line: usize,
        zone: jiff::tz::TimeZone,
    ) -> Self {
        let tailers = paths
            .iter()
            .map(|path| Tailer::new(path.clone(), positions.get(path).cloned(), read_existing))
            .collect();
        AuthSource {
            tailers,
            journal: None,
            parser: LineParser::new(zone),
            max_line,
        }
    }

    /// A source reading the journal instead of files.
    pub fn from_journal(journal: super::journal::JournalSource) -> Self {
        AuthSource {
            tailers: Vec::new(),
            journal: Some(journal),
            parser: LineParser::default(),
            max_line: MAX_RAW_BYTES,
        }
    }

    /// Reads new lines of every file into events, stopping once `budget`
    /// events were produced; the positions after what was read go into
    /// `positions`.
    pub fn poll(
        &mut self,
        now_ms: i64,
        budget: usize,
        out: &mut Vec<Event>,
        positions: &mut BTreeMap<PathBuf, Position>,
    ) -> u64 {
        let mut read_errors = 0;
        for tailer in &mut self.tailers {
            let parser = &mut self.parser;
            let start = out.len();
            let mut emit = |line: &[u8], truncated: bool| {
                let text = String::from_utf8_lossy(line);
                parser.parse_line(&text, truncated, now_ms, out);
                out.len() < budget
            };
            if tailer.poll(self.max_line, &mut emit).is_err() {
                read_errors += 1;
            }
            let path = tailer.path().display().to_string();
            for event in &mut out[start..] {
                event.fields.path.get_or_insert_with(|| path.clone());
            }
            if let Some(position) = tailer.checkpoint() {
                positions.insert(tailer.path().to_path_buf(), position);
            }
            if out.len() >= budget {
                break;
            }
        }
        if let Some(journal) = &mut self.journal {
            journal.poll(&mut self.parser, budget, out);
        }
        read_errors
    }
}
