//! Detection rules in the collector: a task that reads accepted
//! events from the registry's `events` table by row id with a durable
//! cursor, runs them through the detection engine (`countywatch-detect`),
//! and turns each [`Detection`] into an alert for the notifier and a record
//! for a [`DetectionSink`] (the incident store, `incident/detection_sink.rs`).
//!
//! The engine's state is saved with the cursor in `<data_dir>/detection.db`,
//! in one transaction, every `save_every` and at shutdown. On start the
//! state is restored and the events after the cursor are read again, so a
//! restart in the middle of a window still fires. Detections raised after
//! the last save and before a crash are raised again after it (at least
//! once). Rule files reload on SIGHUP; a reload that fails keeps the rules
//! that run.
//!
//! The task reads again at once while reads return events; when idle it
//! waits for the registry's append signal (ingest stored a batch), or
//! [`IDLE`] for events another process appended, which nothing signals.
//!
//! Also here: the `rules check|test|replay` helpers for detection files.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use countywatch_config::duration::PromDuration;
use countywatch_daemon::clock::now_ms;
use countywatch_detect::calendar::{Calendar, CalendarConfig};
use countywatch_detect::engine::Engine;
use countywatch_detect::replay::{self, RecentEvents, ReplaySink, Reread, SkipReason};
use countywatch_detect::{Detection, rulefmt};
use countywatch_rules::check::CheckOutcome;
use countywatch_wire::Event;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use tokio::sync::watch;

use crate::event_log::{EventCursor, EventLog};
use countywatch_notify::Notifier;
use countywatch_notify::alert::{Alert, LabelSet};

/// How long a detection's alert stays active: detections are one-shot, so
/// the alert resolves by itself after this lease.
const ALERT_LEASE_MS: i64 = 5 * 60_000;
/// Most events read per round.
const EVENTS_PER_READ: usize = 1_000;
/// Longest pause when there was nothing to read: appends by this process
/// wake the task at once, other processes' are seen after this.
const IDLE: Duration = Duration::from_millis(200);

/// `detection:` in the collector configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Detection rule files or directories of them (`*.yaml`, tests
    /// excluded), beside the built-in packs.
    pub rule_files: Vec<PathBuf>,
    /// Whether the packs shipped in `rules/detection/` (compiled in) run
    /// too. A rule in `rule_files` with the same `id` replaces the built-in one.
    pub builtin: bool,
    /// Rule ids switched off, built-in or not.
    pub disabled: Vec<String>,
    /// Working hours and time zone for `working_hours:` and `time_of_day:`
    /// conditions (Asia/Shanghai, 09:00-18:00 Monday to Friday by default).
    pub calendar: CalendarConfig,
    /// How often the engine's state and cursor are saved.
    pub save_every: PromDuration,
    /// On the very first start, run the events already stored rather than
    /// only those accepted from now on.
    pub from_beginning: bool,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            rule_files: Vec::new(),
            builtin: true,
            disabled: Vec::new(),
            calendar: CalendarConfig::default(),
            save_every: PromDuration(Duration::from_secs(10)),
            from_beginning: false,
        }
    }
}

impl DetectionConfig {
    /// Adds every problem of the rule files and calendar to `problems`.
    pub fn validate(&self, problems: &mut countywatch_config::config_file::Problems) {
        if let Err(calendar_problems) = Calendar::new(&self.calendar) {
            for problem in calendar_problems.0 {
                problems.general(format!("detection.calendar: {problem}"));
            }
        }
        if self.save_every.get().is_zero() {
            problems.general("detection.save_every must be positive");
        }
        match self.load_all_rules() {
            Ok(rules) => {
                // A typo here would leave the rule running while its
                // author thinks it off.
                for id in &self.disabled {
                    if !rules.iter().any(|rule| &rule.id == id) {
                        problems.general(format!("detection.disabled: no rule has id {id:?}"));
                    }
                }
            }
            Err(failures) => {
                for problem in failures.to_string().lines() {
                    problems.general(format!("detection.rule_files: {problem}"));
                }
            }
        }
    }

    /// Loads the rules that run: the built-in packs (unless `builtin:
    /// false`) less the ids `rule_files` define, then the files' rules,
    /// all less `disabled`. The error lists every problem, one per line.
    pub fn load_rules(&self) -> Result<Vec<rulefmt::Rule>, RuleFilesError> {
        let mut rules = self.load_all_rules()?;
        rules.retain(|rule| !self.disabled.contains(&rule.id));
        Ok(rules)
    }

    /// [`DetectionConfig::load_rules`] without `disabled` applied.
    fn load_all_rules(&self) -> Result<Vec<rulefmt::Rule>, RuleFilesError> {
        let files = rulefmt::rule_files(&self.rule_files).map_err(RuleFilesError::List)?;
        let own = rulefmt::load_all(&files).map_err(RuleFilesError::Invalid)?;
        let mut rules = Vec::new();
        if self.builtin {
            let mut failures = Vec::new();
            for pack in crate::builtin_packs::DETECTION {
                match rulefmt::parse(&pack.origin(), pack.text) {
                    Ok(pack_rules) => rules.extend(
                        pack_rules
                            .into_iter()
                            .filter(|rule| !own.iter().any(|mine| mine.id == rule.id)),
                    ),
                    Err(problems) => failures.push(problems),
                }
            }
            if !failures.is_empty() {
                return Err(RuleFilesError::Invalid(failures));
            }
        }
        rules.extend(own);
        Ok(rules)
    }
}

/// Why the detection rules cannot be loaded; the operator must fix a rule
/// file or `detection.rule_files`.
#[derive(Debug, thiserror::Error)]
pub enum RuleFilesError {
    /// A `rule_files` entry cannot be listed.
    #[error("cannot list rule files: {0}")]
    List(std::io::Error),
    /// Files or built-in packs with problems; one line per problem.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<countywatch_config::config_file::Problems>),
}

/// Where detections are recorded with their evidence: the incident store in
/// the collector (`incident::detection_sink`); [`JsonLinesSink`] where no
/// store is wanted (tests, tools).
pub trait DetectionSink: Send + Sync {
    /// Records one detection.
    fn record(&self, detection: &Detection) -> anyhow::Result<()>;

    /// Adds what the sink did beyond recording to the detection's alert
    /// (the incident store: the block a rule's response asked for).
    fn annotate(&self, _detection: &Detection, _alert: &mut Alert) {}

    /// Hears that SIGHUP put `rules` in force (the ones the engine now
    /// runs, loaded once), so that what the sink built from the rules
    /// follows them (the incident store: the rules agents run while
    /// offline, the texts the console shows).
    fn rules_reloaded(&self, _rules: &[rulefmt::Rule]) {}
}

/// Appends each detection, evidence included, as one JSON line.
pub struct JsonLinesSink {
    /// The file, opened for appending.
    file: Mutex<std::fs::File>,
}

impl JsonLinesSink {
    /// Opens (creating) `<data_dir>/detections.jsonl`.
    pub fn open(data_dir: &Path) -> anyhow::Result<JsonLinesSink> {
        let path = data_dir.join("detections.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(JsonLinesSink {
            file: Mutex::new(file),
        })
    }
}

impl DetectionSink for JsonLinesSink {
    fn record(&self, detection: &Detection) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(detection)?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("detections file lock poisoned"))?;
        file.write_all(&line)?;
        Ok(())
    }
}

/// The detection task's metrics.
#[derive(Clone)]
pub struct DetectionMetrics {
    /// Events run through the engine.
    pub events: IntCounter,
    /// Detections by rule and severity.
    pub detections: IntCounterVec,
    /// Group keys evicted because a rule was full, by rule.
    pub evictions: IntCounterVec,
    /// Failures by stage: `read` (events), `decode` (a stored event),
    /// `template`, `record` (the sink), `save` (the state), `reload`.
    pub failures: IntCounterVec,
    /// Group keys held across all rules.
    pub groups: IntGauge,
}

impl DetectionMetrics {
    /// Registers the metrics.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let events = IntCounter::new(
            "countywatch_detection_events_total",
            "Security events run through the detection rules.",
        )?;
        let detections = IntCounterVec::new(
            Opts::new(
                "countywatch_detections_total",
                "Detections raised, by rule and severity.",
            ),
            &["rule", "severity"],
        )?;
        let evictions = IntCounterVec::new(
            Opts::new(
                "countywatch_detection_state_evictions_total",
                "Group keys a detection rule forgot because it held max_groups keys.",
            ),
            &["rule"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "countywatch_detection_failures_total",
                "Detection failures by stage: read, decode, template, record, save, reload.",
            ),
            &["stage"],
        )?;
        let groups = IntGauge::new(
            "countywatch_detection_state_groups",
            "Group keys the detection rules hold.",
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(detections.clone()))?;
        registry.register(Box::new(evictions.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(groups.clone()))?;
        for stage in ["read", "decode", "template", "record", "save", "reload"] {
            failures.with_label_values(&[stage]);
        }
        Ok(DetectionMetrics {
            events,
            detections,
            evictions,
            failures,
            groups,
        })
    }
}

/// The alert a detection raises: its labels, title as `summary` unless the
/// rule set one, and a short lease.
pub fn to_alert(detection: &Detection, now_ms: i64) -> Alert {
    let mut annotations: LabelSet = detection.annotations.clone();
    annotations
        .entry("summary".to_string())
        .or_insert_with(|| detection.title.clone());
    Alert {
        labels: detection.labels.clone(),
        annotations,
        starts_at_ms: detection.at_ms,
        ends_at_ms: Some(now_ms.max(detection.at_ms).saturating_add(ALERT_LEASE_MS)),
        generator_url: String::new(),
        value: Some(detection.evidence.len().to_string()),
    }
}

/// The engine with where it reads and saves.
struct Detector {
    /// The engine.
    engine: Engine,
    /// The event log, read-only.
    events: EventLog,
    /// `detection.db`, where state and cursor are saved.
    state: Connection,
    /// The last event id run through the engine.
    cursor: EventCursor,
    /// Evictions already reported to the metric, by rule.
    reported_evictions: BTreeMap<String, u64>,
    /// Template failures already reported.
    reported_template_failures: u64,
}

const STATE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS detection_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor INTEGER NOT NULL,
    state BLOB NOT NULL,
    saved_ms INTEGER NOT NULL
);";

impl Detector {
    fn open(data_dir: &Path, engine: Engine, from_beginning: bool) -> anyhow::Result<Detector> {
        let events = EventLog::open_read_only(data_dir).context("cannot read events")?;
        let state_path = data_dir.join("detection.db");
        let state = countywatch_daemon::sqlite::open(&state_path)?;
        state
            .execute_batch(STATE_SCHEMA)
            .with_context(|| format!("cannot set up {}", state_path.display()))?;
        let saved: Option<(i64, Vec<u8>)> = state
            .query_row(
                "SELECT cursor, state FROM detection_state WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let mut detector = Detector {
            engine,
            events,
            state,
            cursor: EventCursor::START,
            reported_evictions: BTreeMap::new(),
            reported_template_failures: 0,
        };
        match saved {
            Some((cursor, bytes)) => {
                detector.cursor = EventCursor::from_id(cursor);
                match detector.engine.restore(&bytes) {
                    Ok(summary) => tracing::info!(
                        cursor,
                        rules = summary.rules_restored,
                        keys = summary.groups_restored,
                        dropped_rules = summary.rules_dropped,
                        "detection state restored"
                    ),
                    Err(error) => {
                        tracing::warn!(%error, "detection state not restored; windows start empty")
                    }
                }
            }
            None if !from_beginning => {
                detector.cursor = detector.events.end()?;
            }
            None => {}
        }
        Ok(detector)
    }

    /// Runs the next events through the engine, and the clock to now.
    /// Returns the detections and how many events were read.
    fn step(&mut self, metrics: &DetectionMetrics) -> anyhow::Result<(Vec<Detection>, usize)> {
        let rows = self.events.read_after(self.cursor, EVENTS_PER_READ)?;
        let mut detections = Vec::new();
        let events = &self.events;
        let mut lookup = |id: i64| -> Option<Event> { events.get(id) };
        for row in &rows {
            self.cursor = row.cursor();
            match serde_json::from_str::<Event>(&row.body) {
                Ok(event) => {
                    metrics.events.inc();
                    self.engine
                        .process(&event, row.id, &mut lookup, &mut detections);
                }
                Err(error) => {
                    metrics.failures.with_label_values(&["decode"]).inc();
                    tracing::warn!(id = row.id, %error, "stored event does not decode; skipped by detection");
                }
            }
        }
        // Windows follow the events' time; silence is measured in real time.
        self.engine
            .fire_absences(now_ms(), &mut lookup, &mut detections);
        self.report(metrics);
        Ok((detections, rows.len()))
    }

    fn report(&mut self, metrics: &DetectionMetrics) {
        for stats in self.engine.rule_stats() {
            let reported = self
                .reported_evictions
                .entry(stats.rule_id.clone())
                .or_insert(0);
            if stats.evictions > *reported {
                metrics
                    .evictions
                    .with_label_values(&[&stats.rule_id])
                    .inc_by(stats.evictions - *reported);
                *reported = stats.evictions;
            }
        }
        let failures = self.engine.template_failures();
        if failures > self.reported_template_failures {
            metrics
                .failures
                .with_label_values(&["template"])
                .inc_by(failures - self.reported_template_failures);
            self.reported_template_failures = failures;
        }
        metrics
            .groups
            .set(i64::try_from(self.engine.group_count()).unwrap_or(i64::MAX));
    }

    /// Saves the state and the cursor together.
    fn save(&mut self) -> anyhow::Result<()> {
        let bytes = self.engine.snapshot();
        self.state.execute(
            "INSERT INTO detection_state (id, cursor, state, saved_ms) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, state = excluded.state, saved_ms = excluded.saved_ms",
            params![self.cursor.id(), bytes, now_ms()],
        )?;
        Ok(())
    }
}

/// Starts the detection task over `rules` (`config`'s, loaded by the
/// caller, who shares them with the offline set and the console) when
/// there are any.
pub fn start(
    config: &DetectionConfig,
    rules: Vec<rulefmt::Rule>,
    data_dir: &Path,
    sink: Arc<dyn DetectionSink>,
    notifier: Arc<Notifier>,
    registry: &prometheus::Registry,
    wakes: Wakes,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if rules.is_empty() {
        return Ok(None);
    }
    let calendar =
        Calendar::new(&config.calendar).map_err(|problems| anyhow::anyhow!("{problems}"))?;
    let rule_count = rules.len();
    let engine = Engine::new(rules, calendar);
    let detector = Detector::open(data_dir, engine, config.from_beginning)?;
    let metrics =
        DetectionMetrics::register(registry).context("cannot register detection metrics")?;
    tracing::info!(
        rules = rule_count,
        cursor = detector.cursor.id(),
        "detection rules loaded"
    );
    // Listened for here, not in the task: a SIGHUP sent as soon as the
    // collector says it listens must not fall before the task first runs.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    Ok(Some(tokio::spawn(run(
        detector,
        hangup,
        config.clone(),
        sink,
        notifier,
        metrics,
        wakes,
    ))))
}

/// What ends the detection task's idle wait besides [`IDLE`] and SIGHUP.
pub struct Wakes {
    /// Changes when ingest appended events (`Registry::watch_appends`).
    pub appended: watch::Receiver<i64>,
    /// Turns true when the collector stops.
    pub stopped: watch::Receiver<bool>,
}

async fn run(
    mut detector: Detector,
    mut hangup: Option<tokio::signal::unix::Signal>,
    config: DetectionConfig,
    sink: Arc<dyn DetectionSink>,
    notifier: Arc<Notifier>,
    metrics: DetectionMetrics,
    Wakes {
        mut appended,
        mut stopped,
    }: Wakes,
) {
    let mut last_save = tokio::time::Instant::now();
    // False once the registry is gone: the idle poll alone remains.
    let mut appends_signalled = true;
    loop {
        // Marked seen before reading, so that an append committed during
        // the read ends the idle wait below instead of waiting for IDLE.
        appended.borrow_and_update();
        let step_metrics = metrics.clone();
        let Ok((returned, stepped)) = tokio::task::spawn_blocking(move || {
            let result = detector.step(&step_metrics);
            (detector, result)
        })
        .await
        else {
            return;
        };
        detector = returned;
        let read = match stepped {
            Ok((detections, read)) => {
                let now = now_ms();
                let mut alerts = Vec::with_capacity(detections.len());
                for detection in &detections {
                    metrics
                        .detections
                        .with_label_values(&[&detection.rule_id, detection.severity.as_str()])
                        .inc();
                    tracing::info!(rule = %detection.rule_id, key = %detection.group_key, title = %detection.title, "detection");
                    if let Err(error) = sink.record(detection) {
                        metrics.failures.with_label_values(&["record"]).inc();
                        tracing::error!(error = %format!("{error:#}"), "cannot record a detection");
                    }
                    let mut alert = to_alert(detection, now);
                    sink.annotate(detection, &mut alert);
                    alerts.push(alert);
                }
                if notifier
                    .submit_from(countywatch_notify::Origin::Detection, alerts)
                    .await
                    .is_err()
                {
                    break;
                }
                read
            }
            Err(error) => {
                metrics.failures.with_label_values(&["read"]).inc();
                tracing::error!(error = %format!("{error:#}"), "cannot read events for detection");
                0
            }
        };
        if last_save.elapsed() >= config.save_every.get() {
            save(&mut detector, &metrics);
            last_save = tokio::time::Instant::now();
        }
        if *stopped.borrow() {
            break;
        }
        if read > 0 {
            continue;
        }
        let hangup_received = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stopped.changed() => break,
            changed = appended.changed(), if appends_signalled => {
                appends_signalled = changed.is_ok();
            }
            _ = tokio::time::sleep(IDLE) => {}
            _ = hangup_received => reload(&mut detector, &config, sink.as_ref(), &metrics),
        }
    }
    save(&mut detector, &metrics);
}

fn save(detector: &mut Detector, metrics: &DetectionMetrics) {
    if let Err(error) = detector.save() {
        metrics.failures.with_label_values(&["save"]).inc();
        tracing::error!(error = %format!("{error:#}"), "cannot save the detection state");
    }
}

fn reload(
    detector: &mut Detector,
    config: &DetectionConfig,
    sink: &dyn DetectionSink,
    metrics: &DetectionMetrics,
) {
    match config.load_rules() {
        Ok(rules) => {
            let count = rules.len();
            let calendar = Calendar::new(&config.calendar).unwrap_or_default();
            sink.rules_reloaded(&rules);
            detector.engine.replace_rules(rules, calendar);
            tracing::info!(rules = count, "SIGHUP: detection rules reloaded");
        }
        Err(problems) => {
            metrics.failures.with_label_values(&["reload"]).inc();
            tracing::error!(%problems, "SIGHUP: detection rules not reloaded; the previous ones keep running");
        }
    }
}

/// Whether `path` holds detection rules (a top-level `rules:` key) rather
/// than Prometheus rule groups (`groups:`).
pub fn is_detection_rule_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines().any(|line| line.starts_with("rules:"))
            && !text.lines().any(|line| line.starts_with("groups:"))
    })
}

/// Whether `path` holds detection tests rather than promtool tests.
pub fn is_detection_test_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|text| countywatch_detect::unittest::looks_like_test_file(&text))
}

/// `rules check` for one detection rule file, in promtool's report style.
pub fn check_file(path: &Path) -> CheckOutcome {
    let mut report = format!("Checking {}\n", path.display());
    match rulefmt::load(path) {
        Ok(rules) => {
            report.push_str(&format!(
                "  SUCCESS: {} detection rules found\n\n",
                rules.len()
            ));
            CheckOutcome {
                passed: true,
                exit_code: 0,
                report,
            }
        }
        Err(problems) => {
            report.push_str(&format!("  FAILED:\n{problems}\n\n"));
            CheckOutcome {
                passed: false,
                exit_code: countywatch_rules::check::EXIT_FAILED,
                report,
            }
        }
    }
}

/// `rules replay`: prints what `rules` raise over the events in `events`
/// (`-` for standard input) on `out`, with `calendar` (a calendar file) or
/// the default one, times in `display`'s zone (else the host's); skipped
/// lines and the summary go to `err`. Returns
/// whether the rules loaded and every line was replayed.
pub fn replay_command(
    events: &Path,
    rules: &[PathBuf],
    calendar: Option<&Path>,
    display: Option<countywatch_notify::display::Display>,
    json: bool,
    out: &mut impl std::io::Write,
    err: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let files = rulefmt::rule_files(rules).context("cannot list rule files")?;
    let loaded = rulefmt::load_all(&files).map_err(|failures| {
        anyhow::anyhow!(
            failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let calendar = match calendar {
        Some(path) => Calendar::load(path).map_err(anyhow::Error::msg)?,
        None => Calendar::default(),
    };
    // People read the detections' times in the configuration's zone when
    // one was given, else the host's, else the calendar's.
    let display = display.unwrap_or_else(|| {
        countywatch_notify::display::DisplayConfig::default().resolve(calendar.zone())
    });
    let mut engine = Engine::new(loaded, calendar);
    let mut sink = PrintingSink {
        out,
        err: &mut *err,
        json,
        described: 0,
        display,
    };
    let summary = if events.as_os_str() == "-" {
        // Standard input cannot be read twice: evidence comes from the
        // last events kept in memory.
        let mut evidence = RecentEvents::new(replay::RECENT_EVENTS);
        replay::replay(
            &mut engine,
            std::io::stdin().lock(),
            &mut evidence,
            &mut sink,
        )
    } else {
        let file = std::fs::File::open(events)
            .with_context(|| format!("cannot open {}", events.display()))?;
        let input = std::io::BufReader::with_capacity(1 << 16, file);
        let regular = std::fs::metadata(events).is_ok_and(|metadata| metadata.is_file());
        if regular {
            // A second handle on the same file: evidence is read back by
            // offset, so nothing is kept in memory.
            let reread = std::fs::File::open(events)
                .with_context(|| format!("cannot open {}", events.display()))?;
            replay::replay(&mut engine, input, &mut Reread::new(reread), &mut sink)
        } else {
            // A pipe (`<(zcat ...)`) must not be opened twice.
            let mut evidence = RecentEvents::new(replay::RECENT_EVENTS);
            replay::replay(&mut engine, input, &mut evidence, &mut sink)
        }
    }
    .context("replay stopped")?;
    if sink.described < summary.skipped() {
        writeln!(
            err,
            "(only the first {MAX_SKIPPED_DESCRIBED} skipped lines are described)"
        )?;
    }
    writeln!(err, "{summary}")?;
    Ok(summary.skipped() == 0)
}

/// Most skipped lines `rules replay` describes one by one; the rest are
/// counted in the summary.
const MAX_SKIPPED_DESCRIBED: u64 = 100;

/// Prints detections as they fire, and the first skipped lines.
struct PrintingSink<'a, O, E> {
    /// Where detections go (standard output).
    out: &'a mut O,
    /// Where skipped lines go (standard error).
    err: &'a mut E,
    /// One JSON object per detection instead of a line for people.
    json: bool,
    /// Skipped lines described so far.
    described: u64,
    /// The zone detections' times are printed in.
    display: countywatch_notify::display::Display,
}

impl<O: std::io::Write, E: std::io::Write> ReplaySink for PrintingSink<'_, O, E> {
    fn detection(&mut self, detection: &Detection) -> std::io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut *self.out, detection)?;
            writeln!(self.out)
        } else {
            let time = self.display.time(detection.at_ms);
            writeln!(self.out, "{}", replay::describe(detection, &time))
        }
    }

    fn skipped(&mut self, line_number: u64, reason: &SkipReason) {
        if self.described < MAX_SKIPPED_DESCRIBED {
            self.described += 1;
            // Standard error going away is no reason to stop the replay.
            let _ = writeln!(self.err, "line {line_number}: {reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_detect::{Evidence, Severity};
    use countywatch_wire::{EventKind, EventSource};

    fn detection() -> Detection {
        Detection {
            rule_id: "ssh_brute_force".into(),
            title: "SSH brute force from 203.0.113.9".into(),
            severity: Severity::High,
            group_key: "src_ip=203.0.113.9".into(),
            labels: [("alertname", "ssh_brute_force"), ("src_ip", "203.0.113.9")]
                .into_iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            tags: vec!["T1110.001".into()],
            hosts: vec!["web1".into()],
            at_ms: 1_000,
            evidence: vec![Evidence {
                event_id: Some(7),
                event: Event::new(1_000, EventSource::Auth, EventKind::SshLoginFailed),
            }],
            response: None,
        }
    }

    #[test]
    fn a_detection_is_a_one_shot_alert_with_its_labels_and_title() {
        let alert = to_alert(&detection(), 50_000);
        assert_eq!(
            alert.labels.get("src_ip").map(String::as_str),
            Some("203.0.113.9")
        );
        assert_eq!(
            alert.annotations.get("summary").map(String::as_str),
            Some("SSH brute force from 203.0.113.9")
        );
        assert_eq!(alert.starts_at_ms, 1_000);
        assert_eq!(alert.ends_at_ms, Some(50_000 + ALERT_LEASE_MS));
        assert_eq!(alert.value.as_deref(), Some("1"));
    }

    #[test]
    fn the_sink_appends_one_json_line_per_detection() {
        let dir = tempfile::tempdir().unwrap();
        let sink = JsonLinesSink::open(dir.path()).unwrap();
        sink.record(&detection()).unwrap();
        sink.record(&detection()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("detections.jsonl")).unwrap();
        let lines: Vec<Detection> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines, vec![detection(), detection()]);
    }

    #[test]
    fn rule_and_test_files_are_told_apart_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        assert!(is_detection_rule_file(&write(
            "d.yaml",
            "rules:\n  - id: a\n"
        )));
        assert!(!is_detection_rule_file(&write(
            "p.yaml",
            "groups:\n  - name: a\n    rules: []\n"
        )));
        assert!(is_detection_test_file(&write(
            "d.test.yaml",
            "rule_files: [d.yaml]\ntests:\n  - name: x\n    events: []\n    expect: []\n"
        )));
        assert!(!is_detection_test_file(&write(
            "p.test.yaml",
            "rule_files: [p.yaml]\ntests:\n  - input_series: []\n"
        )));
    }

    /// The shipped ssh pack, whose `ssh_login_outside_working_hours` rule
    /// follows the calendar.
    fn ssh_pack() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/detection/ssh.yaml")
    }

    /// Replays `events` (JSON lines) from a file with the ssh pack and
    /// `calendar`; returns (passed, stdout, stderr).
    fn replay_file(events: &str, calendar: Option<&str>) -> (bool, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let events_path = dir.path().join("events.jsonl");
        std::fs::write(&events_path, events).unwrap();
        let calendar_path = calendar.map(|text| {
            let path = dir.path().join("calendar.yaml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let passed = replay_command(
            &events_path,
            &[ssh_pack()],
            calendar_path.as_deref(),
            None,
            false,
            &mut out,
            &mut err,
        )
        .unwrap_or_else(|error| {
            err.extend_from_slice(format!("{error:#}").as_bytes());
            false
        });
        (
            passed,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    /// Monday 2026-11-02 20:00 in Shanghai (12:00 UTC).
    const MONDAY_20H: &str = r#"{"timestamp_ms":1793620800000,"host":"web1","source":"auth","kind":"ssh_login_accepted","fields":{"user":"alice","src_ip":"10.0.0.8"}}"#;

    #[test]
    fn replay_follows_the_calendar_it_is_given() {
        let (passed, out, err) = replay_file(MONDAY_20H, None);
        assert!(passed, "{err}");
        assert!(
            out.contains("ssh_login_outside_working_hours [host=web1,user=alice]"),
            "{out}"
        );
        assert!(
            err.contains("1 events, 1 detections, 0 lines skipped"),
            "{err}"
        );
        // The county works until 21:00: 20:00 is working time.
        let late_shift = "timezone: Asia/Shanghai\nworkdays: [mon, tue, wed, thu, fri]\nstart: \"08:00\"\nend: \"21:00\"\n";
        let (passed, out, err) = replay_file(MONDAY_20H, Some(late_shift));
        assert!(passed, "{err}");
        assert_eq!(out, "");
        assert!(err.contains("1 events, 0 detections"), "{err}");
        // A holiday makes the Monday a day off again.
        let holiday = "start: \"08:00\"\nend: \"21:00\"\nholidays: [2026-11-02]\n";
        let (_, out, _) = replay_file(MONDAY_20H, Some(holiday));
        assert!(out.contains("ssh_login_outside_working_hours"), "{out}");
    }

    #[test]
    fn a_bad_calendar_file_is_refused_with_its_position() {
        let (passed, out, err) = replay_file(MONDAY_20H, Some("timezone: Mars/Olympus_Mons\n"));
        assert!(!passed);
        assert_eq!(out, "");
        assert!(err.contains("calendar.yaml: "), "{err}");
        assert!(err.contains("Mars/Olympus_Mons"), "{err}");
        let (passed, _, err) = replay_file(MONDAY_20H, Some("start: \"08:00\"\nopen: always\n"));
        assert!(!passed);
        assert!(err.contains("calendar.yaml:2:1"), "{err}");
    }

    #[test]
    fn replay_reports_bad_lines_by_number_and_still_replays_the_rest() {
        let events = format!(
            "{MONDAY_20H}\n{{\"oops\n{}\n",
            MONDAY_20H.replace("1793620800000", "1793620700000")
        );
        let (passed, out, err) = replay_file(&events, None);
        assert!(!passed, "skipped lines make the command fail");
        assert!(out.contains("ssh_login_outside_working_hours"), "{out}");
        assert!(err.contains("line 2: not an event: "), "{err}");
        assert!(err.contains("line 3: out of time order: "), "{err}");
        assert!(
            err.contains("1 events, 1 detections, 2 lines skipped (1 not events, 1 out of time order, 0 too long)"),
            "{err}"
        );
    }
}
