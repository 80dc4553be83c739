//! A rule group: its rules evaluated in order at one instant, each rule's
//! output written back to the store at once so later rules (and the next
//! evaluation) see it, with staleness markers for series a rule stopped
//! producing, as Prometheus's `Group.Eval` does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::alert::{Alert, AlertingRule};
use crate::promql::{Evaluator, Sample, Value};
use crate::recording::RecordingRule;
use crate::rulefmt::GroupSpec;
use crate::storage::{Millis, Storage, stale_marker};
use countywatch_labels::labels::{FastSet, Labels};

/// Settings shared by every group.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Labels of this collector, for `$externalLabels` in templates.
    pub external_labels: BTreeMap<String, String>,
    /// Most samples one expression may produce at any step.
    pub max_samples: usize,
    /// Time allowed for one rule's evaluation before it is aborted.
    pub rule_timeout: Option<Duration>,
    /// Step of subqueries written without one.
    pub default_subquery_step: Millis,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            external_labels: BTreeMap::new(),
            max_samples: 5_000_000,
            rule_timeout: None,
            default_subquery_step: 60_000,
        }
    }
}

/// A rule of either kind.
#[derive(Clone, Debug)]
pub enum Rule {
    /// An alerting rule with its alerts.
    Alert(AlertingRule),
    /// A recording rule.
    Record(RecordingRule),
}

/// A group with its rules' state.
#[derive(Clone, Debug)]
pub struct Group {
    /// The validated definition.
    pub spec: GroupSpec,
    /// The rules, in spec order.
    pub rules: Vec<Rule>,
    /// Per rule, the series it wrote last time, to mark the missing stale.
    previous: Vec<FastSet<Labels>>,
    /// Per rule, the error of its last evaluation.
    pub last_errors: Vec<Option<String>>,
}

/// A rule's failure at one evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFailure {
    /// The rule's name.
    pub rule: String,
    /// What went wrong.
    pub message: String,
}

impl Group {
    /// A group in its initial state.
    pub fn new(spec: GroupSpec) -> Group {
        let rules = spec
            .rules
            .iter()
            .filter_map(|rule| {
                AlertingRule::new(rule, &spec.labels)
                    .map(Rule::Alert)
                    .or_else(|| RecordingRule::new(rule, &spec.labels).map(Rule::Record))
            })
            .collect::<Vec<_>>();
        let count = rules.len();
        Group {
            spec,
            rules,
            previous: vec![FastSet::default(); count],
            last_errors: vec![None; count],
        }
    }

    /// Evaluates every rule at `t`, writing outputs into `storage`.
    /// Returns the rules that failed; the others still ran.
    pub fn eval(
        &mut self,
        storage: &mut Storage,
        t: Millis,
        options: &EvalOptions,
    ) -> Vec<RuleFailure> {
        self.eval_with(storage, t, options, |_, _| {})
    }

    /// [`Group::eval`], also handing every sample written into `storage`
    /// (recording rules' series, `ALERTS`, `ALERTS_FOR_STATE`, and the
    /// staleness markers of series a rule stopped producing) to `written`,
    /// so that the collector can forward computed series to remote_write
    /// exactly as Prometheus appends them to its own storage.
    pub fn eval_with(
        &mut self,
        storage: &mut Storage,
        t: Millis,
        options: &EvalOptions,
        mut written: impl FnMut(&Labels, f64),
    ) -> Vec<RuleFailure> {
        let mut failures = Vec::new();
        for index in 0..self.rules.len() {
            let Some(spec) = self.spec.rules.get(index) else {
                continue;
            };
            let mut evaluator = Evaluator::new(storage);
            evaluator.max_samples = options.max_samples;
            evaluator.default_subquery_step = options.default_subquery_step;
            evaluator.deadline = options.rule_timeout.map(|timeout| Instant::now() + timeout);
            let result = evaluator
                .instant(&spec.expr, t)
                .and_then(|value| match value {
                    Value::Vector(samples) => Ok(samples),
                    Value::Scalar(value) => Ok(vec![Sample {
                        labels: Labels::default(),
                        value,
                        timestamp: t,
                    }]),
                    other => Err(crate::promql::EvalError::new(format!(
                        "rule result is a {}, not an instant vector or scalar",
                        other.type_name()
                    ))),
                });
            let output = match result {
                Err(error) => Err(error.to_string()),
                Ok(samples) => match &mut self.rules[index] {
                    Rule::Alert(rule) => rule
                        .eval(samples, t, &options.external_labels, self.spec.limit)
                        .map_err(|error| error.to_string()),
                    Rule::Record(rule) => rule
                        .eval(samples, t, self.spec.limit)
                        .map_err(|error| error.to_string()),
                },
            };
            let output = match output {
                Ok(output) => {
                    self.last_errors[index] = None;
                    output
                }
                Err(message) => {
                    failures.push(RuleFailure {
                        rule: spec.name().to_string(),
                        message: message.clone(),
                    });
                    self.last_errors[index] = Some(message);
                    Vec::new()
                }
            };
            let mut current = FastSet::with_capacity_and_hasher(output.len(), Default::default());
            for sample in output {
                // A full store refuses new series; the store counts them.
                let _ = storage.append(&sample.labels, t, sample.value);
                written(&sample.labels, sample.value);
                current.insert(sample.labels);
            }
            for gone in self.previous[index].difference(&current) {
                let _ = storage.append(gone, t, stale_marker());
                written(gone, stale_marker());
            }
            self.previous[index] = current;
        }
        failures
    }

    /// The group's alerts that are firing now.
    pub fn firing(&self) -> Vec<&Alert> {
        self.rules
            .iter()
            .flat_map(|rule| match rule {
                Rule::Alert(rule) => rule.firing(),
                Rule::Record(_) => Vec::new(),
            })
            .collect()
    }
}
