//! Security event sources: what the host already records, turned into
//! [`Event`]s for the collector's detection rules.
//!
//! - [`auth_log`]: authentication logs through the parsers in [`parse`],
//!   followed by [`tail`] (one line splitter in [`lines`]).
//! - [`fim`]: file integrity monitoring.
//! - [`ports`]: listening sockets.
//! - [`state`]: the positions and baselines persisted in the state dir.
//!
//! Delivery contract: [`Sources::poll`] returns the new events together
//! with a [`Checkpoint`] (log positions, FIM baseline, known listeners as
//! of those events). The caller puts the events in a batch and calls
//! [`Checkpoint::commit`] only once the collector acknowledged that batch.
//! Checkpoints must be committed in the order they were produced (later
//! ones supersede earlier ones). After a crash the sources resume from the
//! last committed checkpoint, so unacknowledged events are read again and
//! acknowledged ones are not.

pub mod auth_log;
pub mod fim;
pub mod lines;
pub mod parse;
pub mod ports;
pub mod state;
pub mod tail;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use countywatch_wire::{Event, EventKind, EventSource, MetricFamily, MetricKind};

use crate::config::Config;

/// State file of the log positions.
const AUTH_STATE: &str = "auth-positions.json";
/// State file of the FIM baseline.
const FIM_STATE: &str = "fim-baseline.json";
/// State file of the known listeners.
const PORTS_STATE: &str = "ports-listeners.json";

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
    /// Most events returned by one poll.
    max_events: usize,
    /// Events produced, by source and kind, for self-metrics.
    events_total: BTreeMap<(EventSource, EventKind), u64>,
    /// Log files that could not be read, per poll.
    auth_read_errors: u64,
    /// Shared with every checkpoint: what was last written and failures.
    committer: Arc<Committer>,
}

/// Persists checkpoints; shared by every [`Checkpoint`] of one [`Sources`].
#[derive(Debug)]
struct Committer {
    /// The state directory.
    state_dir: PathBuf,
    /// The bytes last written per state file, so unchanged state is not
    /// rewritten on every batch.
    written: Mutex<BTreeMap<&'static str, Vec<u8>>>,
    /// Commits that failed to write.
    failures: AtomicU64,
}

/// What to persist once the events of one poll are acknowledged.
#[derive(Debug)]
pub struct Checkpoint {
    /// Log positions by path.
    auth: Option<BTreeMap<PathBuf, tail::Position>>,
    /// The FIM baseline.
    fim: Option<fim::Baseline>,
    /// The known listeners.
    ports: Option<Vec<ports::Listener>>,
    /// Where and how to write.
    committer: Arc<Committer>,
}

impl Checkpoint {
    /// Persists the state (atomically, file by file). Call it after the
    /// collector acknowledged the batch holding this poll's events; on
    /// error the previous state stays, and events are re-sent after a
    /// restart rather than lost.
    pub fn commit(&self) -> std::io::Result<()> {
        let result = self.write();
        if let Err(error) = &result {
            self.committer.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "cannot persist source positions");
        }
        result
    }

    fn write(&self) -> std::io::Result<()> {
        if let Some(auth) = &self.auth {
            self.committer.store(AUTH_STATE, auth)?;
        }
        if let Some(fim) = &self.fim {
            self.committer.store(FIM_STATE, fim)?;
        }
        if let Some(ports) = &self.ports {
            self.committer.store(PORTS_STATE, ports)?;
        }
        Ok(())
    }
}

impl Committer {
    fn store<T: serde::Serialize>(&self, name: &'static str, value: &T) -> std::io::Result<()> {
        let bytes = state::to_bytes(value)?;
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if written.get(name) == Some(&bytes) {
            return Ok(());
        }
        state::store_bytes(&self.state_dir.join(name), &bytes)?;
        written.insert(name, bytes);
        Ok(())
    }
}

impl Sources {
    /// Starts the enabled sources from the state persisted in
    /// `config.state_dir`; `host` is the name events carry.
    pub fn start(config: &Config, host: String) -> Sources {
        let state_dir = config.state_dir.join("sources");
        let settings = &config.sources;
        let mut written = BTreeMap::new();
        let mut load = |name: &'static str| {
            if let Ok(bytes) = std::fs::read(state_dir.join(name)) {
                written.insert(name, bytes);
            }
            state_path(&state_dir, name)
        };
        let auth = settings.auth.enabled.then(|| {
            let positions: BTreeMap<PathBuf, tail::Position> =
                state::load(&load(AUTH_STATE)).unwrap_or_default();
            auth_log::AuthSource::new(
                &settings.auth.paths,
                &positions,
                settings.auth.read_existing,
                settings.auth.max_line_bytes,
            )
        });
        let fim = settings.fim.enabled.then(|| {
            fim::Fim::new(
                settings.fim.paths.clone(),
                state::load(&load(FIM_STATE)),
                settings.fim.rescan_interval.get(),
            )
        });
        let ports = settings.ports.enabled.then(|| {
            let allow = settings
                .ports
                .allow
                .iter()
                .filter_map(|rule| ports::AllowRule::parse(&rule.value).ok())
                .collect();
            ports::PortsSource::new(
                config.paths.procfs.clone(),
                allow,
                state::load(&load(PORTS_STATE)),
            )
        });
        Sources {
            host,
            auth,
            fim,
            ports,
            max_events: settings.max_events_per_batch,
            events_total: BTreeMap::new(),
            auth_read_errors: 0,
            committer: Arc::new(Committer {
                state_dir,
                written: Mutex::new(written),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// Collects what happened since the last poll: at most
    /// `max_events_per_batch` events, and the checkpoint that covers them.
    /// Does blocking file IO (bounded by the event budget).
    pub fn poll(&mut self) -> (Vec<Event>, Checkpoint) {
        let now = now_ms();
        let mut events = Vec::new();
        let mut checkpoint = Checkpoint {
            auth: None,
            fim: None,
            ports: None,
            committer: Arc::clone(&self.committer),
        };
        if let Some(fim) = &self.fim {
            let (fim_events, baseline) = fim.poll();
            events.extend(fim_events);
            checkpoint.fim = Some(baseline);
        }
        if let Some(ports) = &mut self.ports {
            checkpoint.ports = Some(ports.poll(now, &mut events));
        }
        if let Some(auth) = &mut self.auth {
            let mut positions = BTreeMap::new();
            let budget = self.max_events.max(events.len() + 1);
            self.auth_read_errors += auth.poll(now, budget, &mut events, &mut positions);
            checkpoint.auth = Some(positions);
        }
        for event in &mut events {
            event.host.clone_from(&self.host);
            *self
                .events_total
                .entry((event.source, event.kind))
                .or_default() += 1;
        }
        (events, checkpoint)
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
        let mut errors = MetricFamily::new(
            "countywatch_agent_source_read_errors_total",
            "Failed reads of a log file, watched file or socket table, by source.",
            MetricKind::Counter,
        );
        if self.auth.is_some() {
            errors.push(&[("source", "auth")], self.auth_read_errors as f64);
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
        families.push(counter(
            "countywatch_agent_source_checkpoint_failures_total",
            "Source positions that could not be persisted after an acknowledged batch.",
            self.committer.failures.load(Ordering::Relaxed),
        ));
        families
    }
}

fn state_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(name)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

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
        let mut sources = Sources::start(&config, "host-1".into());
        let (events, checkpoint) = sources.poll();
        assert_eq!(users(&events), vec!["a"]);
        assert_eq!(events[0].host, "host-1");
        checkpoint.commit().unwrap();
        append(&log, &line("b"));
        let (events, _never_acknowledged) = sources.poll();
        assert_eq!(users(&events), vec!["b"]);
        drop(sources);

        // A crash before the acknowledgement: b comes again, a does not.
        append(&log, &line("c"));
        let mut sources = Sources::start(&config, "host-1".into());
        let (events, checkpoint) = sources.poll();
        assert_eq!(users(&events), vec!["b", "c"]);
        checkpoint.commit().unwrap();
        drop(sources);
        let mut sources = Sources::start(&config, "host-1".into());
        assert!(users(&sources.poll().0).is_empty());
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
        let mut sources = Sources::start(&config, "h".into());
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
        let mut sources = Sources::start(&config, "h".into());
        let (_, checkpoint) = sources.poll();
        checkpoint.commit().unwrap();
        drop(sources);
        std::fs::write(&passwd, "root:x:0:0::/root:/bin/sh\neve:x:0:0::/:/bin/sh\n").unwrap();
        for _ in 0..2 {
            // Not committed the first time: the change is reported again.
            let mut sources = Sources::start(&config, "h".into());
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
