//! The authentication log source: tails `/var/log/auth.log` or
//! `/var/log/secure` (or reads the journal) and turns new lines into
//! security events with `countywatch_parse`'s [`LineParser`]. This is the
//! thin IO part: one [`Tailer`] per configured file (`countywatch-agent
//! replay` over a whole file is `countywatch_parse::auth_replay`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use countywatch_parse::auth_line::LineParser;
use countywatch_wire::{Event, MAX_RAW_BYTES, MetricFamily, MetricKind};

use super::journal::{self, JournalSource};
use super::tail::{self, Tailer};
use countywatch_config::config_file::{Problems, Spanned};
use serde::Deserialize;

use super::log_time::validate_timezone;
use super::{Position, Source, SourceSection, StartContext, StartError};

/// The authentication log source.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSourceConfig {
    /// Whether the source runs.
    pub enabled: bool,
    /// Log files to follow. Missing files are waited for, so the default
    /// lists both the Debian/Ubuntu and the RHEL/Kylin/openEuler names.
    pub paths: Vec<PathBuf>,
    /// Whether a file found at the very first start (no saved position) is
    /// read from its beginning; by default only lines written from then on
    /// are reported. Files appearing later are always read whole.
    pub read_existing: bool,
    /// Longest line kept, in bytes; longer lines are cut and marked
    /// `truncated`.
    pub max_line_bytes: usize,
    /// When to read systemd-journald instead of the files: `auto` when none
    /// of `paths` exists at start and journald runs, `always`, or `never`.
    pub journal: JournalMode,
    /// The `journalctl` program run to read the journal.
    pub journalctl: PathBuf,
    /// The zone of the files' zone-less timestamps (`Dec  6 10:00:01`):
    /// `local` (the default: `TZ`, else `/etc/localtime`) or a tzdb name
    /// (`Asia/Shanghai`, `UTC`). ISO-8601 stamps keep their own offset.
    pub timezone: Option<Spanned<String>>,
}

/// When the auth source reads the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalMode {
    /// When none of the log files exists at start and journald runs.
    Auto,
    /// Always, ignoring the files.
    Always,
    /// Never.
    Never,
}

impl Default for AuthSourceConfig {
    fn default() -> Self {
        AuthSourceConfig {
            enabled: true,
            paths: vec![
                PathBuf::from("/var/log/auth.log"),
                PathBuf::from("/var/log/secure"),
            ],
            read_existing: false,
            max_line_bytes: 16 * 1024,
            journal: JournalMode::Auto,
            journalctl: PathBuf::from("journalctl"),
            timezone: None,
        }
    }
}

impl SourceSection for AuthSourceConfig {
    fn validate(&self, problems: &mut Problems) {
        if !(1..=MAX_RAW_BYTES).contains(&self.max_line_bytes) {
            problems.general(format!(
                "sources.auth.max_line_bytes must be between 1 and {MAX_RAW_BYTES}"
            ));
        }
        validate_timezone(self.timezone.as_ref(), problems);
    }
}

/// Position key of the log positions (a map of path to [`tail::Position`]).
pub const POSITION: &str = "auth";

/// Starts the auth source when `sources.auth` enables it: the journal
/// ([`use_journal`]) or the files, which inotify watches to wake the run
/// loop early.
pub fn start(context: &mut StartContext<'_>) -> Result<Option<Box<dyn Source>>, StartError> {
    let settings = &context.sources.auth;
    if !settings.enabled {
        return Ok(None);
    }
    let mut source = if use_journal(settings) {
        let journal = JournalSource::new(
            settings.journalctl.clone(),
            context.position(journal::POSITION),
            settings.read_existing,
            Some(Arc::clone(context.wake)),
        );
        AuthSource::from_journal(journal)
    } else {
        let positions: BTreeMap<PathBuf, tail::Position> =
            context.position(POSITION).unwrap_or_default();
        AuthSource::new(
            &settings.paths,
            &positions,
            settings.read_existing,
            settings.max_line_bytes,
            super::source_zone("auth", settings.timezone.as_ref()),
        )
    };
    source.log_watcher = watch_logs(&settings.paths, context.wake);
    Ok(Some(Box::new(source)))
}

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
    /// Log files that could not be read, one per file and poll.
    read_errors: u64,
    /// The inotify watch on the log files' directories (dropping it stops it).
    log_watcher: Option<notify::RecommendedWatcher>,
}

impl AuthSource {
    /// Tails `paths`, resuming from the persisted `positions`. Files met for
    /// the first time start at their end unless `read_existing`.
    pub fn new(
        paths: &[PathBuf],
        positions: &BTreeMap<PathBuf, tail::Position>,
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
            read_errors: 0,
            log_watcher: None,
        }
    }

    /// A source reading the journal instead of files.
    pub fn from_journal(journal: super::journal::JournalSource) -> Self {
        AuthSource {
            tailers: Vec::new(),
            journal: Some(journal),
            parser: LineParser::default(),
            max_line: MAX_RAW_BYTES,
            read_errors: 0,
            log_watcher: None,
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
        positions: &mut BTreeMap<PathBuf, tail::Position>,
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

impl Source for AuthSource {
    fn poll(&mut self, now_ms: i64, budget: usize, out: &mut Vec<Event>) -> Option<Position> {
        let mut positions = BTreeMap::new();
        // Room for at least one event, whatever the sources before took.
        let budget = budget.max(out.len() + 1);
        self.read_errors += AuthSource::poll(self, now_ms, budget, out, &mut positions);
        Some(match &self.journal {
            Some(journal) => Position::of(journal::POSITION, journal.position()),
            None => Position::of(POSITION, &positions),
        })
    }

    fn clock_skew(&self) -> Option<u64> {
        Some(self.parser.stats.events_clock_skew)
    }

    fn read_errors(&self) -> Option<u64> {
        let journal_errors = self.journal.as_ref().map_or(0, |journal| journal.errors);
        Some(self.read_errors + journal_errors)
    }

    fn self_metrics(&self) -> Vec<MetricFamily> {
        let counter = |name: &'static str, help: &'static str, value: u64| {
            MetricFamily::single(name, help, MetricKind::Counter, value as f64)
        };
        let stats = &self.parser.stats;
        vec![
            counter(
                "countywatch_agent_auth_lines_total",
                "Authentication log lines read.",
                stats.lines,
            ),
            counter(
                "countywatch_agent_auth_lines_ignored_total",
                "Authentication log lines understood and deliberately turned into no event.",
                stats.lines_ignored,
            ),
            counter(
                "countywatch_agent_auth_lines_not_understood_total",
                "Authentication log lines no parser understood (dropped, counted here).",
                stats.lines_unknown,
            ),
            counter(
                "countywatch_agent_auth_lines_truncated_total",
                "Authentication log lines longer than sources.auth.max_line_bytes, kept cut.",
                stats.lines_truncated,
            ),
        ]
    }
}

/// Whether the auth source reads the journal: when told to, or (`auto`)
/// when none of the log files exists and journald runs.
fn use_journal(settings: &AuthSourceConfig) -> bool {
    match settings.journal {
        JournalMode::Always => true,
        JournalMode::Never => false,
        JournalMode::Auto => {
            !settings.paths.iter().any(|path| path.exists())
                && journal::journald_present(Path::new("/"))
        }
    }
}

/// Watches the directories of the log files (not the files: rotation
/// replaces them) and signals `wake` on writes, creations and renames of a
/// file whose name starts with a log's name. Accesses are ignored: our own
/// reads would otherwise wake us forever.
fn watch_logs(
    paths: &[PathBuf],
    wake: &Arc<tokio::sync::Notify>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let logs: Vec<(PathBuf, String)> = paths
        .iter()
        .filter_map(|path| {
            let directory = path.parent()?.to_path_buf();
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((directory, name))
        })
        .collect();
    let watched = logs.clone();
    let wake = Arc::clone(wake);
    let is_log = move |path: &Path| {
        watched.iter().any(|(directory, name)| {
            path.parent() == Some(directory.as_path())
                && path
                    .file_name()
                    .is_some_and(|file| file.to_string_lossy().starts_with(name.as_str()))
        })
    };
    let mut watcher = match notify::recommended_watcher(
        move |result: notify::Result<notify::Event>| {
            let relevant = match &result {
                Ok(event) => !event.kind.is_access() && event.paths.iter().any(|path| is_log(path)),
                Err(_) => true,
            };
            if relevant {
                wake.notify_one();
            }
        },
    ) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "cannot use inotify for the log files; reading them every interval");
            return None;
        }
    };
    let directories: std::collections::BTreeSet<&PathBuf> =
        logs.iter().map(|(directory, _)| directory).collect();
    for directory in directories {
        if let Err(error) = watcher.watch(directory, notify::RecursiveMode::NonRecursive) {
            tracing::debug!(directory = %directory.display(), %error, "cannot watch the log directory; reading it every interval");
        }
    }
    Some(watcher)
}
