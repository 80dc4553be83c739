//! Security event sources: what the host already records, turned into
//! [`Event`]s for the collector's detection rules.
//!
//! - [`auth_log`]: authentication logs through the `countywatch-parse`
//!   crate's parsers, followed by [`tail`] (one line splitter in [`lines`]).
//!   [`log_time`] picks the zone of their zone-less timestamps.
//! - [`fim`]: file integrity monitoring.
//! - [`ports`]: listening sockets.
//! - [`syslog`]: syslog received from network devices (UDP, TCP), turned
//!   into device events by the vendor parsers in `countywatch-parse`.
//!
//! Delivery contract: [`Sources::poll`] returns the new events together
//! with a [`Checkpoint`] (log positions, FIM baseline, known listeners as
//! of those events). The caller stores the events and
//! [`Checkpoint::positions`] atomically (the agent's spool writes both in
//! one SQLite transaction), in the order they were produced; later
//! positions supersede earlier ones. [`Sources::start`] resumes from the
//! stored positions, so after a crash events not yet stored are read
//! again and stored ones are not. Received syslog has no position: its
//! events are handed out once, and the caller spools them at once.

pub mod auth_log;
pub mod fim;
pub mod journal;
pub mod log_time;
pub mod ports;
pub mod syslog;
pub mod tail;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use countywatch_wire::{Event, EventKind, EventSource, MetricFamily, MetricKind};

use countywatch_config::config_file::Spanned;

use crate::config::Config;

/// Position key of the log positions (a map of path to [`tail::Position`]).
pub const AUTH_POSITION: &str = "auth";
/// Position key of the journal cursor ([`journal::JournalPosition`]).
pub const JOURNAL_POSITION: &str = "journal";
/// Position key of the FIM baseline ([`fim::Baseline`]).
pub const FIM_POSITION: &str = "fim";
/// Position key of the known listeners (a list of [`ports::Listener`]).
pub const PORTS_POSITION: &str = "ports";

/// Every enabled source.
pub struct Sources {
    /// The name events carry as `host`.
    host: String,
    /// The authentication log source, when enabled.
    auth: Option<auth_log::AuthSource>,
    /// File integrity monitoring, when enabled.
    fim: Option<fim::Fim>,
    /// Listening ports, when enabled.
    ports: Option<ports::PortsSource>,
    /// The syslog receiver, once started ([`Sources::start_syslog`]).
    syslog: Option<syslog::SyslogSource>,
    /// Most events returned by one poll.
    max_events: usize,
    /// Events produced, by source and kind, for self-metrics.
    events_total: BTreeMap<(EventSource, EventKind), u64>,
    /// Log files that could not be read, per poll.
    auth_read_errors: u64,
    /// Sources whose clock skew (events stamped in the future) was logged:
    /// once per source, the counter says how often.
    clock_skew_logged: std::collections::BTreeSet<&'static str>,
    /// The serialised positions last handed out, to skip unchanged ones.
    last_positions: BTreeMap<&'static str, String>,
    /// Signalled when a followed log file changes or FIM finds a change.
    wake: Arc<tokio::sync::Notify>,
    /// The inotify watch on the log files' directories (dropping it stops it).
    _log_watcher: Option<notify::RecommendedWatcher>,
}

/// The positions that go with the events of one poll: each source's name
/// and its serialised state, only for the sources whose state changed.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// (source name, JSON state).
    positions: Vec<(String, String)>,
}

impl Checkpoint {
    /// What to store atomically with the poll's events.
    pub fn positions(&self) -> Vec<(String, String)> {
        self.positions.clone()
    }
}

impl Sources {
    /// Starts the enabled sources from their stored positions; `stored`
    /// returns a source's serialised position by name ([`AUTH_POSITION`]...).
    /// `host` is the name events carry.
    pub fn start(
        config: &Config,
        host: String,
        stored: impl Fn(&str) -> Option<String>,
    ) -> Sources {
        let settings = &config.sources;
        let mut last_positions = BTreeMap::new();
        let mut load = |name: &'static str| -> Option<String> {
            let text = stored(name)?;
            last_positions.insert(name, text.clone());
            Some(text)
        };
        let auth = settings.auth.enabled.then(|| {
            if use_journal(&settings.auth) {
                let journal = journal::JournalSource::new(
                    settings.auth.journalctl.clone(),
                    parse_position(JOURNAL_POSITION, load(JOURNAL_POSITION)),
                    settings.auth.read_existing,
                );
                return auth_log::AuthSource::from_journal(journal);
            }
            let positions: BTreeMap<PathBuf, tail::Position> =
                parse_position(AUTH_POSITION, load(AUTH_POSITION)).unwrap_or_default();
            auth_log::AuthSource::new(
                &settings.auth.paths,
                &positions,
                settings.auth.read_existing,
                settings.auth.max_line_bytes,
                source_zone("auth", settings.auth.timezone.as_ref()),
            )
        });
        let wake = Arc::new(tokio::sync::Notify::new());
        let fim = settings.fim.enabled.then(|| {
            fim::Fim::new(
                settings.fim.paths.clone(),
                parse_position(FIM_POSITION, load(FIM_POSITION)),
                settings.fim.rescan_interval.get(),
                Some(Arc::clone(&wake)),
            )
        });
        let log_watcher = if settings.auth.enabled {
            watch_logs(&settings.auth.paths, &wake)
        } else {
            None
        };
        let ports = settings.ports.enabled.then(|| {
            let options = ports::PortsOptions {
                allow: settings
                    .ports
                    .allow
                    .iter()
                    .filter_map(|rule| ports::AllowRule::parse(&rule.value).ok())
                    .collect(),
                udp_grace_ms: i64::try_from(settings.ports.udp_grace.get().as_millis())
                    .unwrap_or(i64::MAX),
                own_pid: Some(std::process::id()),
            };
            ports::PortsSource::new(
                config.paths.procfs.clone(),
                options,
                parse_position(PORTS_POSITION, load(PORTS_POSITION)),
            )
        });
        Sources {
            host,
            auth,
            fim,
            ports,
            syslog: None,
            max_events: settings.max_events_per_batch,
            events_total: BTreeMap::new(),
            auth_read_errors: 0,
            clock_skew_logged: std::collections::BTreeSet::new(),
            last_positions,
            wake,
            _log_watcher: log_watcher,
        }
    }

    /// Binds the syslog listeners when `sources.syslog` sets any (inside a
    /// tokio runtime). A configured address that cannot be bound is an
    /// error: the operator asked for it.
    pub fn start_syslog(&mut self, config: &Config) -> std::io::Result<()> {
        if config.sources.syslog.enabled() {
            self.syslog = Some(syslog::SyslogSource::start(
                &config.sources.syslog,
                Arc::clone(&self.wake),
                self.host.clone(),
                source_zone("syslog", config.sources.syslog.timezone.as_ref()),
            )?);
        }
        Ok(())
    }

    /// The syslog receiver's bound addresses (UDP, TCP), for tests.
    pub fn syslog_addresses(&self) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
        self.syslog.as_ref().map_or((None, None), |source| {
            (source.listeners.udp, source.listeners.tcp)
        })
    }

    /// Whether received messages are still waiting after the last poll
    /// (it hit its event budget): poll again without waiting.
    pub fn has_backlog(&self) -> bool {
        self.syslog
            .as_ref()
            .is_some_and(|source| !source.inbox.is_empty())
    }

    /// Signalled (at most one stored permit) when a followed log file was
    /// written, created or renamed, or FIM found a change: a hint to poll
    /// sooner than the interval. Polling on the interval alone stays correct.
    pub fn wake(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.wake)
    }

    /// Collects what happened since the last poll: at most
    /// `max_events_per_batch` events, and the checkpoint that covers them.
    /// Does blocking file IO (bounded by the event budget).
    pub fn poll(&mut self) -> (Vec<Event>, Checkpoint) {
        let now = now_ms();
        let mut events = Vec::new();
        let mut states: Vec<(&'static str, std::io::Result<String>)> = Vec::new();
        if let Some(fim) = &self.fim {
            let (fim_events, baseline) = fim.poll();
            events.extend(fim_events);
            states.push((FIM_POSITION, to_json(&baseline)));
        }
        if let Some(ports) = &mut self.ports {
            let known = ports.poll(now, &mut events);
            states.push((PORTS_POSITION, to_json(&known)));
        }
        if let Some(auth) = &mut self.auth {
            let mut positions = BTreeMap::new();
            let budget = self.max_events.max(events.len() + 1);
            self.auth_read_errors += auth.poll(now, budget, &mut events, &mut positions);
            match &auth.journal {
                Some(journal) => states.push((JOURNAL_POSITION, to_json(journal.position()))),
                None => states.push((AUTH_POSITION, to_json(&positions))),
            }
        }
        if let Some(syslog) = &mut self.syslog {
            syslog.drain(self.max_events.saturating_sub(events.len()), &mut events);
        }
        self.log_clock_skew();
        let mut checkpoint = Checkpoint::default();
        for (name, state) in states {
            match state {
                Ok(text) if self.last_positions.get(name) != Some(&text) => {
                    self.last_positions.insert(name, text.clone());
                    checkpoint.positions.push((name.to_string(), text));
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(source = name, %error, "cannot serialise a source position")
                }
            }
        }
        for event in &mut events {
            // Forwarded auth lines are about the server that sent them, a
            // device of this agent (see `syslog`); everything else is ours.
            let forwarded = event.source == EventSource::Auth && event.fields.device.is_some();
            if !forwarded {
                event.host.clone_from(&self.host);
            }
            *self
                .events_total
                .entry((event.source, event.kind))
                .or_default() += 1;
        }
        (events, checkpoint)
    }

    /// Events stamped in the future, by source.
    fn clock_skew(&self) -> Vec<(&'static str, u64)> {
        let mut counts = Vec::new();
        if let Some(auth) = &self.auth {
            counts.push(("auth", auth.parser.stats.events_clock_skew));
        }
        if let Some(syslog) = &self.syslog {
            counts.push(("syslog", syslog.auth_parser.stats.events_clock_skew));
        }
        counts
    }

    /// Logs the first clock skew of each source (the counter has the rest).
    fn log_clock_skew(&mut self) {
        for (source, count) in self.clock_skew() {
            if count > 0 && self.clock_skew_logged.insert(source) {
                tracing::warn!(
                    source,
                    "log lines stamped more than 5 minutes in the future: stamped with the time they were read instead (the sender's clock or time zone is wrong; see countywatch_agent_events_clock_skew_total)"
                );
            }
        }
    }

    /// The sources' self-metrics: lines read and dropped, events produced.
    pub fn metrics(&self) -> Vec<MetricFamily> {
        let mut families = Vec::new();
        let mut events = MetricFamily::new(
            "countywatch_agent_events_total",
            "Security events produced, by source and kind.",
            MetricKind::Counter,
        );
        for ((source, kind), count) in &self.events_total {
            events.push(
                &[("source", source.as_str()), ("kind", kind.as_str())],
                *count as f64,
            );
        }
        families.push(events);
        let counter = |name: &str, help: &str, value: u64| {
            MetricFamily::single(name, help, MetricKind::Counter, value as f64)
        };
        if let Some(auth) = &self.auth {
            let stats = &auth.parser.stats;
            families.push(counter(
                "countywatch_agent_auth_lines_total",
                "Authentication log lines read.",
                stats.lines,
            ));
            families.push(counter(
                "countywatch_agent_auth_lines_ignored_total",
                "Authentication log lines understood and deliberately turned into no event.",
                stats.lines_ignored,
            ));
            families.push(counter(
                "countywatch_agent_auth_lines_not_understood_total",
                "Authentication log lines no parser understood (dropped, counted here).",
                stats.lines_unknown,
            ));
            families.push(counter(
                "countywatch_agent_auth_lines_truncated_total",
                "Authentication log lines longer than sources.auth.max_line_bytes, kept cut.",
                stats.lines_truncated,
            ));
        }
        let mut skew = MetricFamily::new(
            "countywatch_agent_events_clock_skew_total",
            "Events whose log line was stamped more than 5 minutes after the agent's clock, stamped with the time they were read instead, by source.",
            MetricKind::Counter,
        );
        for (source, count) in self.clock_skew() {
            skew.push(&[("source", source)], count as f64);
        }
        families.push(skew);
        let mut errors = MetricFamily::new(
            "countywatch_agent_source_read_errors_total",
            "Failed reads of a log file, watched file or socket table, by source.",
            MetricKind::Counter,
        );
        if let Some(auth) = &self.auth {
            let journal_errors = auth.journal.as_ref().map_or(0, |journal| journal.errors);
            errors.push(
                &[("source", "auth")],
                (self.auth_read_errors + journal_errors) as f64,
            );
        }
        if let Some(fim) = &self.fim {
            errors.push(
                &[("source", "fim")],
                fim.stats.read_errors.load(Ordering::Relaxed) as f64,
            );
        }
        if let Some(ports) = &self.ports {
            errors.push(
                &[("source", "ports")],
                ports.stats.read_errors.load(Ordering::Relaxed) as f64,
            );
        }
        families.push(errors);
        if let Some(syslog) = &self.syslog {
            families.extend(syslog.metrics());
        }
        families
    }
}

/// The zone of a source's zone-less timestamps; a setting the tzdb does
/// not know (caught by validation, unless the tzdb changed since) falls
/// back to the host's zone with an error.
fn source_zone(source: &str, setting: Option<&Spanned<String>>) -> jiff::tz::TimeZone {
    let zone =
        log_time::zone(setting.map(|setting| setting.value.as_str())).unwrap_or_else(|error| {
            tracing::error!(source, %error, "using the host's time zone");
            log_time::host_zone()
        });
    tracing::info!(source, timezone = %log_time::name(&zone), "reading zone-less log times");
    zone
}

/// Whether the auth source reads the journal: when told to, or (`auto`)
/// when none of the log files exists and journald runs.
fn use_journal(settings: &crate::config::AuthSourceConfig) -> bool {
    use crate::config::JournalMode;
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

/// A stored position, or `None` (with a warning) when it cannot be read.
fn parse_position<T: serde::de::DeserializeOwned>(name: &str, text: Option<String>) -> Option<T> {
    let text = text?;
    match serde_json::from_str(&text) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(source = name, %error, "stored source position is unusable, starting afresh");
            None
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> std::io::Result<String> {
    serde_json::to_string(value).map_err(std::io::Error::other)
}

use countywatch_daemon::clock::now_ms;

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io::Write;
    use std::path::Path;

    use super::*;

    /// Stands in for the spool's positions table.
    #[derive(Default)]
    struct Store(RefCell<BTreeMap<String, String>>);

    impl Store {
        fn start(&self, config: &Config) -> Sources {
            Sources::start(config, "host-1".into(), |name| {
                self.0.borrow().get(name).cloned()
            })
        }

        fn commit(&self, checkpoint: &Checkpoint) {
            self.0.borrow_mut().extend(checkpoint.positions());
        }
    }

    fn config(dir: &Path) -> Config {
        let mut config = Config {
            state_dir: dir.join("state"),
            ..Config::default()
        };
        config.sources.auth.paths = vec![dir.join("auth.log")];
        config.sources.auth.read_existing = true;
        config.sources.fim.paths = vec![dir.join("passwd")];
        config.sources.ports.enabled = false;
        config
    }

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    fn users(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter(|event| event.source == EventSource::Auth)
            .map(|event| event.fields.user.clone().unwrap_or_default())
            .collect()
    }

    fn line(user: &str) -> String {
        format!("Nov 28 01:00:00 h sshd[1]: Invalid user {user} from 192.0.2.1 port 1\n")
    }

    #[test]
    fn events_are_redelivered_until_their_checkpoint_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let log = dir.path().join("auth.log");
        append(&log, &line("a"));
        let store = Store::default();
        let mut sources = store.start(&config);
        let (events, checkpoint) = sources.poll();
        assert_eq!(users(&events), vec!["a"]);
        assert_eq!(events[0].host, "host-1");
        store.commit(&checkpoint);
        append(&log, &line("b"));
        let (events, _never_stored) = sources.poll();
        assert_eq!(users(&events), vec!["b"]);
        drop(sources);

        // A crash before b was stored: b comes again, a does not.
        append(&log, &line("c"));
        let mut sources = store.start(&config);
        let (events, checkpoint) = sources.poll();
        assert_eq!(users(&events), vec!["b", "c"]);
        store.commit(&checkpoint);
        drop(sources);
        let mut sources = store.start(&config);
        let (events, checkpoint) = sources.poll();
        assert!(users(&events).is_empty());
        assert!(
            checkpoint.positions().is_empty(),
            "unchanged positions are not stored again"
        );
    }

    fn woken_within(wake: &tokio::sync::Notify, timeout: std::time::Duration) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async { tokio::time::timeout(timeout, wake.notified()).await.is_ok() })
    }

    #[test]
    fn a_log_write_wakes_the_run_loop_and_our_own_reads_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.sources.fim.enabled = false;
        let log = dir.path().join("auth.log");
        append(&log, &line("a"));
        let mut sources = Store::default().start(&config);
        let wake = sources.wake();
        // Drain whatever creating the file signalled, then read it.
        woken_within(&wake, std::time::Duration::from_millis(200));
        assert_eq!(users(&sources.poll().0), vec!["a"]);
        assert!(
            !woken_within(&wake, std::time::Duration::from_millis(300)),
            "reading the log must not wake us"
        );
        append(&log, &line("b"));
        assert!(woken_within(&wake, std::time::Duration::from_secs(5)));
        assert_eq!(users(&sources.poll().0), vec!["b"]);
    }

    #[test]
    fn the_event_budget_holds_the_rest_for_the_next_poll() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.sources.max_events_per_batch = 3;
        let log = dir.path().join("auth.log");
        for user in ["1", "2", "3", "4", "5"] {
            append(&log, &line(user));
        }
        let mut sources = Store::default().start(&config);
        assert_eq!(users(&sources.poll().0), vec!["1", "2", "3"]);
        assert_eq!(users(&sources.poll().0), vec!["4", "5"]);
        let text: String = sources
            .metrics()
            .iter()
            .map(|family| format!("{family:?}"))
            .collect();
        assert!(text.contains("ssh_invalid_user"), "{text}");
    }

    #[test]
    fn fim_changes_while_unacknowledged_are_reported_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "root:x:0:0::/root:/bin/sh\n").unwrap();
        let store = Store::default();
        let mut sources = store.start(&config);
        let (_, checkpoint) = sources.poll();
        store.commit(&checkpoint);
        drop(sources);
        std::fs::write(&passwd, "root:x:0:0::/root:/bin/sh\neve:x:0:0::/:/bin/sh\n").unwrap();
        for _ in 0..2 {
            // Not stored the first time: the change is reported again.
            let mut sources = store.start(&config);
            let (events, _) = sources.poll();
            let fim: Vec<&Event> = events
                .iter()
                .filter(|event| event.source == EventSource::Fim)
                .collect();
            assert_eq!(fim.len(), 1, "{events:?}");
            assert_eq!(fim[0].fields.users_changed, vec!["eve".to_string()]);
        }
    }
}
