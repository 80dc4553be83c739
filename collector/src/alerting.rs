//! Rule evaluation inside the running collector: the one place that joins
//! the `countywatch-rules` engine to the rest.
//!
//! A task ([`run`]) copies the agents' latest samples from the
//! [`MetricStore`] into a time-series [`Storage`] and evaluates every rule
//! group when its interval comes round. Samples older than the longest
//! history any rule reads (or `rules.retention`, whichever is longer) are
//! dropped. `/metrics` shows `ALERTS`, `ALERTS_FOR_STATE` and the engine's
//! own `countywatch_rule_*` metrics through [`Alerting::write_text`];
//! notifiers read [`Alerting::firing`].
//!
//! Pending and firing alerts are saved in `DATA_DIR/rules/alerts.json`
//! after every evaluation and restored at start, so a restart neither
//! forgets a firing alert nor restarts its `for` clock. Rule files are
//! reloaded on SIGHUP and when one changes on disk; a reload that fails
//! keeps the old rules running, logs why and sets
//! `countywatch_rules_last_reload_successful` to 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use countywatch_config::config_file::Problems;
use countywatch_config::duration::PromDuration;
use countywatch_labels::labels::{Labels, METRIC_NAME};
use countywatch_rules::alert::{Alert, State};
use countywatch_rules::group::{EvalOptions, Group, Rule};
use countywatch_rules::promql::analysis::history_needed;
use countywatch_rules::rulefmt;
use countywatch_rules::storage::{Millis, Storage};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::metric_store::{JOB, MetricStore};
use crate::output::Outputs;
use crate::output::remote_write::Series;

/// Alerting and recording rules (`rules:` in the collector config).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Prometheus rule files to evaluate, beside the built-in packs.
    pub files: Vec<PathBuf>,
    /// Whether the packs shipped in `rules/packs/` (compiled in) run too.
    /// A rule in `files` with the same group and name replaces the built-in one.
    pub builtin: bool,
    /// Rules switched off, built-in or not: an alert or record name, or
    /// `GROUP/NAME` for one group's rule only.
    pub disabled: Vec<String>,
    /// How often a group without its own `interval` runs.
    pub evaluation_interval: PromDuration,
    /// The least history kept per series; more is kept when a rule reads
    /// further back (`rate(x[2h])` needs two hours).
    pub retention: PromDuration,
    /// Most series the rule store holds; samples of new series beyond it
    /// are refused and counted, so a cardinality explosion cannot exhaust
    /// memory.
    pub max_series: usize,
    /// Most samples one expression may produce at any step before its
    /// evaluation is refused.
    pub max_samples: usize,
    /// Time one rule may take; a slower evaluation is aborted and counted,
    /// and the group runs again at its next interval.
    pub rule_timeout: PromDuration,
    /// This collector's labels, for `{{ $externalLabels.x }}` in templates.
    pub external_labels: BTreeMap<String, String>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            files: Vec::new(),
            builtin: true,
            disabled: Vec::new(),
            evaluation_interval: PromDuration(Duration::from_secs(60)),
            retention: PromDuration(Duration::from_secs(3600)),
            max_series: 1_000_000,
            max_samples: 5_000_000,
            rule_timeout: PromDuration(Duration::from_secs(10)),
            external_labels: BTreeMap::new(),
        }
    }
}

impl RulesConfig {
    /// Reports each `disabled` entry that names no rule: a typo there would
    /// leave the rule running while its author thinks it off.
    pub fn validate_disabled(&self, problems: &mut Problems) {
        let all = RulesConfig {
            disabled: Vec::new(),
            ..self.clone()
        };
        let Ok(known) = rule_groups(&all) else {
            return;
        };
        for entry in &self.disabled {
            let found = known.iter().any(|group| {
                group.spec.rules.iter().any(|rule| {
                    is_disabled(std::slice::from_ref(entry), &group.spec.name, rule.name())
                })
            });
            if !found {
                problems.general(format!("rules.disabled: no rule is named {entry:?}"));
            }
        }
    }
}

/// An alert that is firing now, for notifiers.
#[derive(Clone, Debug, PartialEq)]
pub struct FiringAlert {
    /// Identifying labels, `alertname` included.
    pub labels: Vec<(String, String)>,
    /// Expanded annotations.
    pub annotations: Vec<(String, String)>,
    /// When the alert became pending.
    pub active_at: SystemTime,
    /// When it started firing.
    pub fired_at: SystemTime,
    /// The value of its expression at the last evaluation.
    pub value: f64,
}

/// The rule engine's state, shared by the evaluation task and `/metrics`.
pub struct Alerting {
    /// Store and groups under one lock: evaluation writes rule outputs back
    /// into the store, and the two must not be seen half-updated. A std
    /// mutex, since evaluation runs on a blocking thread and never awaits.
    state: Mutex<EngineState>,
    /// The configuration, kept for reloads.
    config: RulesConfig,
    /// Settings passed to every group.
    options: EvalOptions,
    /// Where alert state is saved; `None` keeps it in memory only.
    state_file: Option<PathBuf>,
    /// The data dir whose audit trail records reloads; `None` in tests.
    audit_dir: Option<PathBuf>,
    /// Where computed series go (remote_write), after each evaluation.
    outputs: Arc<Outputs>,
}

struct EngineState {
    storage: Storage,
    groups: Vec<GroupState>,
    /// History kept per series, in milliseconds.
    retention: Millis,
    /// Each rule file's modification time at the last (re)load.
    file_times: Vec<Option<SystemTime>>,
    /// Whether the last reload worked (1 at start).
    last_reload_successful: bool,
}

/// A group with its schedule and its own metrics.
struct GroupState {
    group: Group,
    /// The file the group came from, for the `file` label.
    file: String,
    interval: Duration,
    next_due: Instant,
    last_evaluation: Option<SystemTime>,
    last_duration: Duration,
    failures: u64,
}

/// Groups loaded from the rule files, and the history they need.
struct Loaded {
    groups: Vec<GroupState>,
    retention: Millis,
    file_times: Vec<Option<SystemTime>>,
}

/// An alert as saved in `alerts.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SavedAlert {
    group: String,
    rule: String,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    firing: bool,
    active_at_ms: Millis,
    fired_at_ms: Option<Millis>,
    keep_firing_since_ms: Option<Millis>,
    value: f64,
}

/// A rule group as loaded, with where it came from.
#[derive(Clone, Debug)]
pub struct LoadedGroup {
    /// The validated group, with disabled and replaced rules left out.
    pub spec: rulefmt::GroupSpec,
    /// The rule file, or a built-in pack's origin (`built-in packs/x.yaml`).
    pub file: PathBuf,
}

/// Every rule group that runs under `config`: the built-in packs (unless
/// `builtin: false`) less the rules a file replaces, then the files' groups,
/// each less the rules in `disabled`. Reports every file's problems.
pub fn rule_groups(config: &RulesConfig) -> Result<Vec<LoadedGroup>, Vec<Problems>> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for file in &config.files {
        match rulefmt::load(file) {
            Ok(specs) => groups.extend(specs.into_iter().map(|spec| LoadedGroup {
                spec,
                file: file.clone(),
            })),
            Err(file_problems) => problems.push(file_problems),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let replaced: std::collections::HashSet<(String, String)> = groups
        .iter()
        .flat_map(|group| {
            group
                .spec
                .rules
                .iter()
                .map(|rule| (group.spec.name.clone(), rule.name().to_string()))
        })
        .collect();
    let mut builtin = Vec::new();
    if config.builtin {
        for pack in crate::builtin_packs::ALERTING {
            match rulefmt::parse(&pack.origin(), pack.text) {
                Ok(specs) => {
                    for mut spec in specs {
                        let name = spec.name.clone();
                        spec.rules.retain(|rule| {
                            !replaced.contains(&(name.clone(), rule.name().to_string()))
                        });
                        builtin.push(LoadedGroup {
                            spec,
                            file: pack.origin(),
                        });
                    }
                }
                Err(pack_problems) => problems.push(pack_problems),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    builtin.extend(groups);
    for group in &mut builtin {
        let name = group.spec.name.clone();
        group
            .spec
            .rules
            .retain(|rule| !is_disabled(&config.disabled, &name, rule.name()));
    }
    builtin.retain(|group| !group.spec.rules.is_empty());
    Ok(builtin)
}

/// Whether `rules.disabled` names the rule `rule` of group `group`.
pub fn is_disabled(disabled: &[String], group: &str, rule: &str) -> bool {
    disabled.iter().any(|entry| match entry.split_once('/') {
        Some((disabled_group, disabled_rule)) => disabled_group == group && disabled_rule == rule,
        None => entry == rule,
    })
}

fn load_groups(config: &RulesConfig) -> Result<Loaded, Vec<Problems>> {
    let mut groups = Vec::new();
    let mut history: Millis = 0;
    let now = Instant::now();
    for loaded in rule_groups(config)? {
        let spec = loaded.spec;
        let interval = spec.interval.unwrap_or(config.evaluation_interval.get());
        for rule in &spec.rules {
            let hold = match &rule.kind {
                rulefmt::RuleKind::Alert {
                    for_,
                    keep_firing_for,
                    ..
                } => *for_ + *keep_firing_for,
                rulefmt::RuleKind::Record { .. } => Duration::ZERO,
            };
            history = history.max(history_needed(&rule.expr) + millis(hold));
        }
        groups.push(GroupState {
            group: Group::new(spec),
            file: loaded.file.display().to_string(),
            interval,
            next_due: now,
            last_evaluation: None,
            last_duration: Duration::ZERO,
            failures: 0,
        });
    }
    Ok(Loaded {
        groups,
        retention: history.max(millis(config.retention.get())),
        file_times: modification_times(&config.files),
    })
}

fn modification_times(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|file| {
            std::fs::metadata(file)
                .and_then(|meta| meta.modified())
                .ok()
        })
        .collect()
}

/// The alerting rule named `rule` in group `group`, if any.
fn alerting_rule<'a>(
    groups: &'a mut [GroupState],
    group: &str,
    rule: &str,
) -> Option<&'a mut countywatch_rules::alert::AlertingRule> {
    groups
        .iter_mut()
        .filter(|state| state.group.spec.name == group)
        .flat_map(|state| state.group.rules.iter_mut())
        .find_map(|candidate| match candidate {
            Rule::Alert(alerting) if alerting.name == rule => Some(alerting),
            _ => None,
        })
}

impl Alerting {
    /// Loads every rule file, reporting all problems of all files at once,
    /// and restores alert state saved in `state_file` by a previous run.
    pub fn load(
        config: &RulesConfig,
        state_file: Option<PathBuf>,
    ) -> Result<Alerting, Vec<Problems>> {
        let mut loaded = load_groups(config)?;
        if let Some(path) = &state_file {
            restore_saved(path, &mut loaded.groups);
        }
        Ok(Alerting {
            state: Mutex::new(EngineState {
                storage: Storage::new(config.max_series),
                groups: loaded.groups,
                retention: loaded.retention,
                file_times: loaded.file_times,
                last_reload_successful: true,
            }),
            config: config.clone(),
            options: EvalOptions {
                external_labels: config.external_labels.clone(),
                max_samples: config.max_samples,
                rule_timeout: Some(config.rule_timeout.get()),
                default_subquery_step: millis(config.evaluation_interval.get()),
            },
            state_file,
            audit_dir: None,
            outputs: Outputs::none(),
        })
    }

    /// Sends the series every evaluation computes (recording rules,
    /// `ALERTS`, `ALERTS_FOR_STATE`) to `outputs` from now on.
    pub fn with_outputs(mut self, outputs: Arc<Outputs>) -> Alerting {
        self.outputs = outputs;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EngineState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Whether a rule file changed on disk since the last (re)load.
    pub fn files_changed(&self) -> bool {
        self.lock().file_times != modification_times(&self.config.files)
    }

    /// Reloads the rule files. On success the new rules replace the old,
    /// keeping the alerts of alerting rules with the same group and name;
    /// on failure the old rules keep running. Returns the problems found.
    pub fn reload(&self) -> Result<(), Vec<Problems>> {
        let loaded = load_groups(&self.config);
        let mut state = self.lock();
        match loaded {
            Ok(mut loaded) => {
                for old in &mut state.groups {
                    let group = old.group.spec.name.clone();
                    for rule in &mut old.group.rules {
                        if let Rule::Alert(rule) = rule
                            && let Some(new) = alerting_rule(&mut loaded.groups, &group, &rule.name)
                        {
                            for alert in rule.take_alerts() {
                                new.restore(alert);
                            }
                        }
                    }
                }
                state.groups = loaded.groups;
                state.retention = loaded.retention;
                state.file_times = loaded.file_times;
                state.last_reload_successful = true;
                Ok(())
            }
            Err(problems) => {
                // Do not retry the same broken files on every tick.
                state.file_times = modification_times(&self.config.files);
                state.last_reload_successful = false;
                Err(problems)
            }
        }
    }

    /// Copies the agents' current samples into the rule store, labelled
    /// with `instance` and `job` as on `/metrics`.
    pub fn ingest(&self, store: &MetricStore, now: SystemTime) {
        let mut state = self.lock();
        let EngineState {
            storage, retention, ..
        } = &mut *state;
        store.visit_samples(now, |agent, received_at, name, labels, value| {
            // `instance` and `job` as on /metrics (a device's series has
            // the device as instance), built in one go: a label set is a
            // shared slice, and each `set` on it would copy it.
            let series = Labels::from_pairs(
                countywatch_wire::exposed_labels(agent, JOB, labels)
                    .into_iter()
                    .chain([(METRIC_NAME, name)]),
            );
            // A full store refuses new series and counts them itself.
            let _ = storage.append(&series, unix_millis(received_at), value);
        });
        storage.trim(unix_millis(now) - *retention);
    }

    /// Evaluates every group whose interval has come round, then saves
    /// alert state; returns how long until the next group is due.
    pub fn evaluate_due(&self, now: SystemTime, clock: Instant) -> Duration {
        let mut computed = Vec::new();
        let wait = self.evaluate_due_collecting(now, clock, &mut computed);
        // Outside the engine's lock: a slow disk must not hold up /metrics.
        if !computed.is_empty() {
            self.outputs.enqueue_computed(&computed);
        }
        wait
    }

    /// [`Alerting::evaluate_due`] under the lock, collecting the computed
    /// series into `computed` when an output wants them.
    fn evaluate_due_collecting(
        &self,
        now: SystemTime,
        clock: Instant,
        computed: &mut Vec<Series>,
    ) -> Duration {
        let mut state = self.lock();
        let EngineState {
            storage, groups, ..
        } = &mut *state;
        let t = unix_millis(now);
        let collect = self.outputs.wants_computed();
        let mut evaluated = false;
        for group in groups.iter_mut() {
            if group.next_due > clock {
                continue;
            }
            evaluated = true;
            let started = Instant::now();
            let failures = group
                .group
                .eval_with(storage, t, &self.options, |labels, value| {
                    if collect {
                        computed.push(Series {
                            labels: labels
                                .iter()
                                .map(|(name, value)| (name.to_string(), value.to_string()))
                                .collect(),
                            samples: vec![(value, t)],
                        });
                    }
                });
            group.last_duration = started.elapsed();
            group.last_evaluation = Some(now);
            group.failures += failures.len() as u64;
            for failure in failures {
                tracing::warn!(
                    group = %group.group.spec.name,
                    rule = %failure.rule,
                    error = %failure.message,
                    "rule evaluation failed"
                );
            }
            group.next_due = clock + group.interval;
        }
        if evaluated && let Some(path) = &self.state_file {
            save(path, groups);
        }
        groups
            .iter()
            .map(|group| group.next_due.saturating_duration_since(clock))
            .min()
            .unwrap_or(Duration::from_secs(60))
    }

    /// The alerts firing now, across every group.
    pub fn firing(&self) -> Vec<FiringAlert> {
        let state = self.lock();
        state
            .groups
            .iter()
            .flat_map(|group| group.group.firing())
            .map(|alert| FiringAlert {
                labels: alert
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                annotations: alert.annotations.clone(),
                active_at: from_millis(alert.active_at),
                fired_at: from_millis(alert.fired_at.unwrap_or(alert.active_at)),
                value: alert.value,
            })
            .collect()
    }

    /// Appends `ALERTS`, `ALERTS_FOR_STATE` and the rule engine's metrics
    /// in the Prometheus text format.
    pub fn write_text(&self, out: &mut String) {
        let state = self.lock();
        let mut alerts = String::new();
        let mut for_state = String::new();
        for group in &state.groups {
            for rule in &group.group.rules {
                let Rule::Alert(rule) = rule else {
                    continue;
                };
                for alert in rule.alerts() {
                    if alert.state == State::Inactive {
                        continue;
                    }
                    let mut labels = alert.labels.clone();
                    labels.set("alertstate", alert.state.as_str());
                    let _ = writeln!(alerts, "ALERTS{} 1", exposition_labels(&labels));
                    let _ = writeln!(
                        for_state,
                        "ALERTS_FOR_STATE{} {}",
                        exposition_labels(&alert.labels),
                        alert.active_at / 1000
                    );
                }
            }
        }
        out.push_str(
            "# HELP ALERTS Pending and firing alerts of the collector's rules.\n# TYPE ALERTS gauge\n",
        );
        out.push_str(&alerts);
        out.push_str("# HELP ALERTS_FOR_STATE When each pending or firing alert became active, in Unix seconds.\n# TYPE ALERTS_FOR_STATE gauge\n");
        out.push_str(&for_state);
        let mut per_group =
            |name: &str, help: &str, kind: &str, value: &dyn Fn(&GroupState) -> f64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for group in &state.groups {
                    let labels = Labels::from_pairs([
                        ("rule_group", group.group.spec.name.as_str()),
                        ("file", group.file.as_str()),
                    ]);
                    let _ = writeln!(out, "{name}{} {}", exposition_labels(&labels), value(group));
                }
            };
        per_group(
            "countywatch_rule_group_last_evaluation_timestamp_seconds",
            "When the group was last evaluated, in Unix seconds (0 before the first time).",
            "gauge",
            &|group| {
                group
                    .last_evaluation
                    .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                    .map(|elapsed| elapsed.as_secs_f64())
                    .unwrap_or(0.0)
            },
        );
        per_group(
            "countywatch_rule_evaluation_duration_seconds",
            "How long the group's last evaluation took.",
            "gauge",
            &|group| group.last_duration.as_secs_f64(),
        );
        per_group(
            "countywatch_rule_evaluation_failures_total",
            "Rule evaluations that failed (errors, limits, time budget).",
            "counter",
            &|group| group.failures as f64,
        );
        let _ = writeln!(
            out,
            "# HELP countywatch_rules_series Series held in the rule engine's store.\n# TYPE countywatch_rules_series gauge\ncountywatch_rules_series {}",
            state.storage.series_count()
        );
        let _ = writeln!(
            out,
            "# HELP countywatch_rules_refused_samples_total Samples refused because the store held rules.max_series series.\n# TYPE countywatch_rules_refused_samples_total counter\ncountywatch_rules_refused_samples_total {}",
            state.storage.refused_samples
        );
        let _ = writeln!(
            out,
            "# HELP countywatch_rules_last_reload_successful Whether the last reload of the rule files worked (1) or kept the old rules (0).\n# TYPE countywatch_rules_last_reload_successful gauge\ncountywatch_rules_last_reload_successful {}",
            u8::from(state.last_reload_successful)
        );
    }
}

/// Writes pending and firing alerts to `path` (through a temporary file
/// and a rename, so a crash never leaves half a file).
fn save(path: &Path, groups: &[GroupState]) {
    let mut saved = Vec::new();
    for group in groups {
        for rule in &group.group.rules {
            let Rule::Alert(rule) = rule else {
                continue;
            };
            for alert in rule.alerts() {
                if alert.state == State::Inactive {
                    continue;
                }
                saved.push(SavedAlert {
                    group: group.group.spec.name.clone(),
                    rule: rule.name.clone(),
                    labels: alert
                        .labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    annotations: alert.annotations.clone(),
                    firing: alert.state == State::Firing,
                    active_at_ms: alert.active_at,
                    fired_at_ms: alert.fired_at,
                    keep_firing_since_ms: alert.keep_firing_since,
                    value: if alert.value.is_finite() {
                        alert.value
                    } else {
                        0.0
                    },
                });
            }
        }
    }
    let result = serde_json::to_vec(&saved)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let temporary = path.with_extension("json.tmp");
            std::fs::write(&temporary, bytes)?;
            std::fs::rename(&temporary, path)
        });
    if let Err(error) = result {
        tracing::warn!(path = %path.display(), %error, "cannot save alert state");
    }
}

/// Restores alerts saved by a previous run into rules of the same group
/// and name; an unreadable file is logged and ignored.
fn restore_saved(path: &Path, groups: &mut [GroupState]) {
    let saved: Vec<SavedAlert> = match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(saved) => saved,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring unreadable alert state");
                return;
            }
        },
        Err(_) => return,
    };
    let mut restored = 0;
    for alert in saved {
        let Some(rule) = alerting_rule(groups, &alert.group, &alert.rule) else {
            continue;
        };
        rule.restore(Alert {
            labels: Labels::from_pairs(alert.labels),
            annotations: alert.annotations,
            state: if alert.firing {
                State::Firing
            } else {
                State::Pending
            },
            active_at: alert.active_at_ms,
            fired_at: alert.fired_at_ms,
            resolved_at: None,
            keep_firing_since: alert.keep_firing_since_ms,
            value: alert.value,
        });
        restored += 1;
    }
    if restored > 0 {
        tracing::info!(restored, "alert state restored");
    }
}

/// Starts the evaluation task when there are rules: built-in or in files.
pub fn start(
    config: &RulesConfig,
    data_dir: &Path,
    store: Arc<MetricStore>,
    outputs: Arc<Outputs>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<Option<(Arc<Alerting>, tokio::task::JoinHandle<()>)>> {
    if config.files.is_empty() && !config.builtin {
        return Ok(None);
    }
    let state_file = data_dir.join("rules").join("alerts.json");
    let alerting = Alerting::load(config, Some(state_file)).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid rule files:\n{}", text.join("\n"))
    })?;
    let alerting = Arc::new(Alerting {
        audit_dir: Some(data_dir.to_path_buf()),
        ..alerting.with_outputs(outputs)
    });
    tracing::info!(
        files = config.files.len(),
        builtin = config.builtin,
        groups = alerting.lock().groups.len(),
        "rule evaluation started"
    );
    // Listened for here, not in the task: a SIGHUP sent as soon as the
    // collector says it listens must not fall before the task first runs.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let task = tokio::spawn(run(Arc::clone(&alerting), store, hangup, stopped));
    Ok(Some((alerting, task)))
}

/// Ingests and evaluates until `stopped` turns true; reloads the rule
/// files on SIGHUP or when one changes. Evaluation is CPU work, so it runs
/// on a blocking thread and never stalls the listeners.
pub async fn run(
    alerting: Arc<Alerting>,
    store: Arc<MetricStore>,
    mut hangup: Option<tokio::signal::unix::Signal>,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        let engine = Arc::clone(&alerting);
        let metrics = Arc::clone(&store);
        let wait = tokio::task::spawn_blocking(move || {
            if engine.files_changed() {
                reload_and_log(&engine, "a rule file changed");
            }
            let now = SystemTime::now();
            engine.ingest(&metrics, now);
            engine.evaluate_due(now, Instant::now())
        })
        .await
        .unwrap_or(Duration::from_secs(1));
        // Ingest at least every 5 s so that counters get samples for rate()
        // and file changes are noticed, even when groups run less often.
        let wait = wait.clamp(Duration::from_millis(100), Duration::from_secs(5));
        let hangup_received = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let reload = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = hangup_received => true,
            _ = stopped.changed() => false,
        };
        if *stopped.borrow() {
            break;
        }
        if reload {
            let engine = Arc::clone(&alerting);
            let _ = tokio::task::spawn_blocking(move || reload_and_log(&engine, "SIGHUP")).await;
        }
    }
}

pub(crate) fn reload_and_log(alerting: &Alerting, reason: &str) {
    let outcome = match alerting.reload() {
        Ok(()) => {
            tracing::info!(%reason, "rule files reloaded");
            (crate::audit::Outcome::Success, reason.to_string())
        }
        Err(problems) => {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            tracing::error!(%reason, problems = %text.join("\n"), "rule reload failed; the previous rules keep running");
            (
                crate::audit::Outcome::Failure,
                format!("{reason}: {}", text.join("; ")),
            )
        }
    };
    if let Some(data_dir) = &alerting.audit_dir {
        crate::audit::record_outcome(
            data_dir,
            "system",
            "rules.reloaded",
            "rules",
            outcome.0,
            &outcome.1,
        );
    }
}

/// Labels in the text exposition format: `{a="1",b="2"}`, or nothing.
fn exposition_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(name, _)| *name != METRIC_NAME)
        .map(|(name, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn unix_millis(time: SystemTime) -> Millis {
    time.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0)
}

fn from_millis(t: Millis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.max(0) as u64)
}

fn millis(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use countywatch_wire::{MetricFamily, MetricKind};

    const LOAD_RULES: &str = "groups:\n  - name: load\n    rules:\n      - alert: LoadHigh\n        expr: node_load1 > 1\n        for: 1h\n        labels:\n          severity: warning\n        annotations:\n          summary: \"{{ $labels.instance }} load {{ $value }}\"\n";

    fn setup(rules_text: &str) -> (tempfile::TempDir, RulesConfig, MetricStore) {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.yaml");
        std::fs::write(&rules, rules_text).unwrap();
        let config = RulesConfig {
            files: vec![rules],
            builtin: false,
            ..RulesConfig::default()
        };
        let store = MetricStore::new(Duration::from_secs(300));
        store.update(
            "web1",
            vec![MetricFamily::single(
                "node_load1",
                "load",
                MetricKind::Gauge,
                3.0,
            )],
            0,
        );
        store.update(
            "web2",
            vec![MetricFamily::single(
                "node_load1",
                "load",
                MetricKind::Gauge,
                0.5,
            )],
            0,
        );
        (dir, config, store)
    }

    fn evaluate(alerting: &Alerting, store: &MetricStore, now: SystemTime) {
        alerting.ingest(store, now);
        alerting.evaluate_due(now, Instant::now() + Duration::from_secs(86_400));
    }

    #[test]
    fn agent_metrics_feed_rules_and_alerts_show_on_metrics() {
        let (_dir, config, store) = setup(&LOAD_RULES.replace("for: 1h", "for: 0s"));
        let alerting = Alerting::load(&config, None).unwrap();
        evaluate(&alerting, &store, SystemTime::now());
        let firing = alerting.firing();
        assert_eq!(firing.len(), 1, "{firing:?}");
        assert!(
            firing[0]
                .labels
                .contains(&("instance".to_string(), "web1".to_string()))
        );
        assert_eq!(
            firing[0].annotations,
            vec![("summary".to_string(), "web1 load 3".to_string())]
        );
        let mut text = String::new();
        alerting.write_text(&mut text);
        assert!(
            text.contains("ALERTS{alertname=\"LoadHigh\",alertstate=\"firing\",instance=\"web1\",job=\"countywatch\",severity=\"warning\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("countywatch_rule_evaluation_failures_total{file="),
            "{text}"
        );
        assert!(
            text.contains("countywatch_rules_last_reload_successful 1"),
            "{text}"
        );
    }

    #[test]
    fn a_restart_keeps_the_for_clock_and_firing_alerts() {
        let (dir, config, store) = setup(LOAD_RULES);
        let state_file = dir.path().join("data/rules/alerts.json");
        let first = Alerting::load(&config, Some(state_file.clone())).unwrap();
        evaluate(&first, &store, SystemTime::now());
        assert!(first.firing().is_empty(), "pending, not firing yet");
        drop(first);
        // Pretend the pending alert became active two hours ago, as if the
        // collector had been evaluating it that long before this restart.
        let mut saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
        let started = SystemTime::now() - Duration::from_secs(7200);
        saved[0]["active_at_ms"] = serde_json::json!(unix_millis(started));
        std::fs::write(&state_file, serde_json::to_vec(&saved).unwrap()).unwrap();
        // The restored `for` clock says the alert has been active for 2 h,
        // so it fires at once instead of waiting another hour.
        let second = Alerting::load(&config, Some(state_file)).unwrap();
        evaluate(&second, &store, SystemTime::now());
        let firing = second.firing();
        assert_eq!(firing.len(), 1, "{firing:?}");
        assert_eq!(unix_millis(firing[0].active_at), unix_millis(started));
    }

    #[test]
    fn a_bad_reload_keeps_the_old_rules_and_a_good_one_keeps_alerts() {
        let (_dir, config, store) = setup(&LOAD_RULES.replace("for: 1h", "for: 0s"));
        let alerting = Alerting::load(&config, None).unwrap();
        evaluate(&alerting, &store, SystemTime::now());
        assert_eq!(alerting.firing().len(), 1);
        std::fs::write(
            &config.files[0],
            "groups:\n  - name: load\n    rules:\n      - alert: X\n        expr: rate(\n",
        )
        .unwrap();
        assert!(alerting.reload().is_err());
        let mut text = String::new();
        alerting.write_text(&mut text);
        assert!(
            text.contains("countywatch_rules_last_reload_successful 0"),
            "{text}"
        );
        assert_eq!(
            alerting.firing().len(),
            1,
            "old rules still hold their alert"
        );
        std::fs::write(
            &config.files[0],
            LOAD_RULES
                .replace("for: 1h", "for: 0s")
                .replace("severity: warning", "severity: page"),
        )
        .unwrap();
        assert!(alerting.reload().is_ok());
        assert_eq!(alerting.firing().len(), 1, "alert carried over the reload");
    }

    /// The failure counter of group `limits` as `/metrics` shows it.
    fn failures(alerting: &Alerting) -> String {
        let mut text = String::new();
        alerting.write_text(&mut text);
        text.lines()
            .find(|line| {
                line.starts_with("countywatch_rule_evaluation_failures_total{")
                    && line.contains("rule_group=\"limits\"")
            })
            .and_then(|line| line.rsplit(' ').next())
            .unwrap_or_default()
            .to_string()
    }

    /// Ingests and evaluates as the `round`th interval comes round.
    fn evaluate_round(alerting: &Alerting, store: &MetricStore, round: u32) {
        let now = SystemTime::now();
        alerting.ingest(store, now);
        alerting.evaluate_due(now, Instant::now() + Duration::from_secs(3600) * round);
    }

    const LIMIT_RULES: &str = "groups:\n  - name: limits\n    rules:\n      - alert: LoadHigh\n        expr: node_load1 > 1\n      - alert: Always\n        expr: vector(1)\n";

    #[test]
    fn a_rule_over_its_time_budget_is_aborted_counted_and_run_again_next_interval() {
        let (_dir, mut config, store) = setup(LIMIT_RULES);
        // Past the budget before the first node is evaluated.
        config.rule_timeout = PromDuration(Duration::from_nanos(1));
        let alerting = Alerting::load(&config, None).unwrap();
        evaluate_round(&alerting, &store, 1);
        assert_eq!(failures(&alerting), "2");
        // The group was not stopped: it runs again, and fails again.
        evaluate_round(&alerting, &store, 2);
        assert_eq!(failures(&alerting), "4");
        assert!(alerting.firing().is_empty());
    }

    #[test]
    fn a_rule_over_the_sample_cap_fails_alone_and_the_group_goes_on() {
        let (_dir, mut config, store) = setup(LIMIT_RULES);
        // node_load1 has two series (web1, web2); vector(1) has one.
        config.max_samples = 1;
        let alerting = Alerting::load(&config, None).unwrap();
        evaluate_round(&alerting, &store, 1);
        assert_eq!(failures(&alerting), "1");
        let firing = alerting.firing();
        assert_eq!(firing.len(), 1, "{firing:?}");
        assert!(
            firing[0]
                .labels
                .contains(&("alertname".to_string(), "Always".to_string()))
        );
        evaluate_round(&alerting, &store, 2);
        assert_eq!(failures(&alerting), "2");
    }

    #[test]
    fn bad_rule_files_are_refused_with_positions() {
        let (_dir, config, _store) =
            setup("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: rate(\n");
        let problems = Alerting::load(&config, None).err().unwrap();
        assert!(
            problems[0].to_string().contains("rules.yaml:5:15:"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn built_in_packs_run_unless_replaced_disabled_or_switched_off() {
        let names = |config: &RulesConfig| -> Vec<(String, String, String)> {
            rule_groups(config)
                .unwrap()
                .iter()
                .flat_map(|group| {
                    group.spec.rules.iter().map(|rule| {
                        (
                            group.spec.name.clone(),
                            rule.name().to_string(),
                            group.file.display().to_string(),
                        )
                    })
                })
                .collect()
        };
        let defaults = names(&RulesConfig::default());
        assert!(
            defaults.contains(&(
                "countywatch-agent".to_string(),
                "AgentSilent".to_string(),
                "built-in packs/agent.yaml".to_string()
            )),
            "{defaults:?}"
        );
        assert!(
            defaults
                .iter()
                .any(|(_, rule, _)| rule == "HostOutOfMemory")
        );

        // A file's rule with the same group and name replaces the built-in
        // one; `disabled` drops single rules, built-in or not.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mine.yaml");
        std::fs::write(
            &file,
            "groups:\n  - name: countywatch-agent\n    rules:\n      - alert: AgentSilent\n        expr: vector(1)\n      - alert: Mine\n        expr: vector(1)\n",
        )
        .unwrap();
        let config = RulesConfig {
            files: vec![file.clone()],
            disabled: vec![
                "HostOutOfMemory".to_string(),
                "countywatch-agent/Mine".to_string(),
            ],
            ..RulesConfig::default()
        };
        let loaded = names(&config);
        let silent: Vec<_> = loaded
            .iter()
            .filter(|(_, rule, _)| rule == "AgentSilent")
            .collect();
        assert_eq!(silent.len(), 1, "{loaded:?}");
        assert_eq!(silent[0].2, file.display().to_string());
        assert!(
            !loaded
                .iter()
                .any(|(_, rule, _)| rule == "HostOutOfMemory" || rule == "Mine")
        );
        assert!(loaded.iter().any(|(_, rule, _)| rule == "AgentGone"));

        let off = RulesConfig {
            builtin: false,
            ..RulesConfig::default()
        };
        assert!(names(&off).is_empty());
    }
}
