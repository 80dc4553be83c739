//! Security event sources: what the host already records, turned into
//! [`Event`]s for the collector's detection rules.
//!
//! Every source implements [`Source`] and is registered by one line in
//! the `source_kinds!` table, which also makes its config section
//! ([`SourcesConfig`]) and fixes the order they are polled in:
//!
//! - [`fim`]: file integrity monitoring.
//! - [`ports`]: listening sockets ([`port_allow`]: its allow-list entries).
//! - [`auth_log`]: authentication logs through the `countywatch-parse`
//!   crate's parsers, followed by [`tail`] (or read from the [`journal`]).
//!   [`log_time`] picks the zone of their zone-less timestamps.
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

pub mod journal;
pub mod log_time;
pub mod port_allow;
pub mod tail;

use std::collections::BTreeMap;
use std::sync::Arc;

use countywatch_wire::{Event, EventKind, EventSource, MetricFamily, MetricKind};

use countywatch_config::config_file::{Problems, Spanned};
use countywatch_daemon::clock::now_ms;

/// Generates, from one line per source (its section's doc comment, its
/// config key, which is also the `source` label of its counters, its
/// module, which has the section's type and `start`, and its place in the
/// poll order): the module, `SourcesConfig`, one field per line in the table's order (serde's
/// "expected one of" lists them in that order), then
/// `max_events_per_batch`, its `Default` and `validate`, and
/// [`SOURCE_TABLE`].
macro_rules! source_kinds {
    ($(
        $(#[$doc:meta])*
        $key:ident in $module:ident: $section:ident, polled $rank:literal;
    )*) => {
        $(pub mod $module;)*

        /// The security event sources.
        #[derive(Clone, Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct SourcesConfig {
            $(
                $(#[$doc])*
                pub $key: $module::$section,
            )*
            /// Most events put in one batch; the rest wait for the next batch
            /// (the log positions only advance past what was sent).
            pub max_events_per_batch: usize,
        }

        impl Default for SourcesConfig {
            fn default() -> Self {
                SourcesConfig {
                    $($key: $module::$section::default(),)*
                    max_events_per_batch: 10_000,
                }
            }
        }

        impl SourcesConfig {
            /// Adds every problem of the sections to `problems`, section by
            /// section in the table's order.
            pub fn validate(&self, problems: &mut Problems) {
                $(SourceSection::validate(&self.$key, problems);)*
                if !(1..=40_000).contains(&self.max_events_per_batch) {
                    problems.general("sources.max_events_per_batch must be between 1 and 40000");
                }
            }
        }

        /// Every source kind: its key, its start and its place in the poll
        /// order, in the order of its config section.
        pub const SOURCE_TABLE: &[(&str, StartSource, u8)] = &[$((stringify!($key), $module::start, $rank),)*];
    };
}

// The source table: one line per source, in the order of its config
// section (`sources.<key>`); `polled N` is its place in the poll order
// (earlier ones have the first call on the event budget). Adding a source
// is its file (its section's struct implementing `SourceSection`, and
// `start`) and one line here.
source_kinds! {
    /// Authentication logs.
    auth in auth_log: AuthSourceConfig, polled 3;
    /// File integrity monitoring.
    fim in fim: FimSourceConfig, polled 1;
    /// Listening ports.
    ports in ports: PortsSourceConfig, polled 2;
    /// Syslog from network devices (off unless a listener is set).
    syslog in syslog: SyslogSourceConfig, polled 4;
}

/// Every source kind, by the `source` label of its counters, in the order
/// they are polled (earlier ones have the first call on the event budget).
pub fn sources_in_poll_order() -> Vec<(&'static str, StartSource)> {
    let mut table = SOURCE_TABLE.to_vec();
    table.sort_by_key(|(_, _, rank)| *rank);
    table
        .into_iter()
        .map(|(name, start, _)| (name, start))
        .collect()
}

/// What the source table asks of a source's config section.
pub trait SourceSection {
    /// Adds the section's problems to `problems`.
    fn validate(&self, _problems: &mut Problems) {}
}

/// Starts one source kind from the configuration: `Ok(None)` when the
/// configuration leaves it off.
pub type StartSource = fn(&mut StartContext<'_>) -> Result<Option<Box<dyn Source>>, StartError>;

/// One running security event source.
pub trait Source: Send {
    /// Reads what happened since the last poll into `out`, which may grow
    /// to `budget` events (a source whose every read is small and bounded
    /// may pass it), and returns the state to store with those events, or
    /// `None` for a source that resumes from nothing.
    fn poll(&mut self, now_ms: i64, budget: usize, out: &mut Vec<Event>) -> Option<Position>;

    /// Events stamped in the future so far, for a source that reads log
    /// times (`countywatch_agent_events_clock_skew_total`).
    fn clock_skew(&self) -> Option<u64> {
        None
    }

    /// Failed reads so far (log files, watched files, socket tables), for
    /// a source that reads (`countywatch_agent_source_read_errors_total`).
    fn read_errors(&self) -> Option<u64> {
        None
    }

    /// Whether input is still waiting after the last poll (it hit the
    /// budget): the run loop polls again without waiting.
    fn has_backlog(&self) -> bool {
        false
    }

    /// The source's own self-metrics, beside the counters every source has.
    fn self_metrics(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

/// A source's state after a poll, stored with the poll's events.
pub struct Position {
    /// The name it is stored under.
    key: &'static str,
    /// The state, serialised.
    json: std::io::Result<String>,
}

impl Position {
    /// `state` serialised under `key`.
    pub fn of<T: serde::Serialize>(key: &'static str, state: &T) -> Position {
        Position {
            key,
            json: serde_json::to_string(state).map_err(std::io::Error::other),
        }
    }
}

/// What a source is started with.
pub struct StartContext<'a> {
    /// The sources' configuration.
    pub sources: &'a SourcesConfig,
    /// procfs mount point (`paths.procfs`), for the socket tables.
    pub procfs: &'a std::path::Path,
    /// The name events carry as `host`.
    pub host: &'a str,
    /// Signal it when new input arrives, to be polled sooner than the
    /// interval.
    pub wake: &'a Arc<tokio::sync::Notify>,
    /// Reads a stored position by key.
    stored: &'a dyn Fn(&str) -> Option<String>,
    /// The positions read, as stored, so that unchanged ones are not
    /// stored again.
    loaded: BTreeMap<&'static str, String>,
}

impl StartContext<'_> {
    /// The position stored under `key`, or `None` when there is none or
    /// it cannot be read (with a warning: the source starts afresh).
    pub fn position<T: serde::de::DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        let text = (self.stored)(key)?;
        self.loaded.insert(key, text.clone());
        match serde_json::from_str(&text) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(source = key, %error, "stored source position is unusable, starting afresh");
                None
            }
        }
    }
}

/// A source that could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the {what}")]
pub struct StartError {
    /// What could not start (`syslog receiver`).
    pub what: &'static str,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Every enabled source.
pub struct Sources {
    /// The name events carry as `host`.
    host: String,
    /// The enabled sources, by label, in poll order.
    sources: Vec<(&'static str, Box<dyn Source>)>,
    /// Most events returned by one poll.
    max_events: usize,
    /// Events produced, by source and kind, for self-metrics.
    events_total: BTreeMap<(EventSource, EventKind), u64>,
    /// Sources whose clock skew (events stamped in the future) was logged:
    /// once per source, the counter says how often.
    clock_skew_logged: std::collections::BTreeSet<&'static str>,
    /// The serialised positions last handed out, to skip unchanged ones.
    last_positions: BTreeMap<&'static str, String>,
    /// Signalled when a followed log file changes or FIM finds a change.
    wake: Arc<tokio::sync::Notify>,
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
    /// Starts the enabled sources of [`SOURCE_TABLE`] from their stored
    /// positions (inside a tokio runtime when a receiver is configured);
    /// `stored` returns a source's serialised position by key. `host` is
    /// the name events carry, `procfs` the procfs mount point. A
    /// configured receiver that cannot be bound is an error: the operator
    /// asked for it.
    pub fn start(
        config: &SourcesConfig,
        procfs: &std::path::Path,
        host: String,
        stored: impl Fn(&str) -> Option<String>,
    ) -> Result<Sources, StartError> {
        let wake = Arc::new(tokio::sync::Notify::new());
        let mut context = StartContext {
            sources: config,
            procfs,
            host: &host,
            wake: &wake,
            stored: &stored,
            loaded: BTreeMap::new(),
        };
        let mut sources = Vec::new();
        for (name, start) in sources_in_poll_order() {
            if let Some(source) = start(&mut context)? {
                sources.push((name, source));
            }
        }
        let last_positions = context.loaded;
        Ok(Sources {
            host,
            sources,
            max_events: config.max_events_per_batch,
            events_total: BTreeMap::new(),
            clock_skew_logged: std::collections::BTreeSet::new(),
            last_positions,
            wake,
        })
    }

    /// The labels of the running sources, in poll order.
    pub fn names(&self) -> Vec<&'static str> {
        self.sources.iter().map(|(name, _)| *name).collect()
    }

    /// Whether received messages are still waiting after the last poll
    /// (it hit its event budget): poll again without waiting.
    pub fn has_backlog(&self) -> bool {
        self.sources.iter().any(|(_, source)| source.has_backlog())
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
        let mut states = Vec::new();
        for (_, source) in &mut self.sources {
            states.extend(source.poll(now, self.max_events, &mut events));
        }
        self.log_clock_skew();
        let mut checkpoint = Checkpoint::default();
        for Position { key, json } in states {
            match json {
                Ok(text) if self.last_positions.get(key) != Some(&text) => {
                    self.last_positions.insert(key, text.clone());
                    checkpoint.positions.push((key.to_string(), text));
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(source = key, %error, "cannot serialise a source position")
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
        self.sources
            .iter()
            .filter_map(|(name, source)| Some((*name, source.clock_skew()?)))
            .collect()
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
        for (name, source) in &self.sources {
            if let Some(count) = source.read_errors() {
                errors.push(&[("source", name)], count as f64);
            }
        }
        families.push(errors);
        for (_, source) in &self.sources {
            families.extend(source.self_metrics());
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io::Write;
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    /// Stands in for the spool's positions table.
    #[derive(Default)]
    struct Store(RefCell<BTreeMap<String, String>>);

    impl Store {
        fn start(&self, config: &Config) -> Sources {
            Sources::start(
                &config.sources,
                &config.paths.procfs,
                "host-1".into(),
                |name| self.0.borrow().get(name).cloned(),
            )
            .unwrap()
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

    #[test]
    fn the_registry_starts_every_enabled_source_from_its_table_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.sources.auth.journal = auth_log::JournalMode::Never;
        config.sources.ports.enabled = true;
        config.sources.syslog.udp = Some(countywatch_config::config_file::unspanned(
            "127.0.0.1:0".to_string(),
        ));
        config.sources.syslog.allow = vec![countywatch_config::config_file::unspanned(
            "127.0.0.1".to_string(),
        )];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let names = runtime.block_on(async { Store::default().start(&config).names() });
        let table: Vec<&str> = sources_in_poll_order()
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(names, table, "every source enabled, in table order");
        let unique: std::collections::BTreeSet<&str> = table.iter().copied().collect();
        assert_eq!(unique.len(), table.len(), "labels are unique");

        config.sources.auth.enabled = false;
        config.sources.fim.enabled = false;
        config.sources.ports.enabled = false;
        config.sources.syslog.udp = None;
        assert!(Store::default().start(&config).names().is_empty());
    }

    #[test]
    fn with_defaults_every_table_line_but_syslog_starts_and_syslog_waits_for_a_listener() {
        let keys: Vec<&str> = SOURCE_TABLE.iter().map(|(key, _, _)| *key).collect();
        assert_eq!(keys, ["auth", "fim", "ports", "syslog"], "config order");
        let mut ranks: Vec<u8> = SOURCE_TABLE.iter().map(|(_, _, rank)| *rank).collect();
        ranks.sort_unstable();
        ranks.dedup();
        assert_eq!(ranks.len(), SOURCE_TABLE.len(), "one poll place each");
        let names = Store::default().start(&Config::default()).names();
        assert_eq!(names, ["fim", "ports", "auth"]);
        assert!(!Config::default().sources.syslog.enabled());
    }
}
