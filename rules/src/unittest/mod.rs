//! promtool's rule unit-test format and a runner for it, so that
//! `countywatch-collector rules test` is a drop-in for `promtool test rules`:
//! same file format, the same evaluation schedule (every group at every
//! `evaluation_interval` from 0 to the latest `eval_time`), the same exact
//! comparisons, a similar report and the same exit status.
//!
//! - [`notation`]: the `1+2x3 _ stale` value notation.

pub mod notation;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use countywatch_config::config_file;
use countywatch_config::duration::PromDuration;
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use serde::Deserialize;

use crate::group::{EvalOptions, Group};
use crate::promql::{Evaluator, Value, parse_expr};
use crate::rulefmt::{self, GroupSpec};
use crate::storage::{Millis, Storage};
use countywatch_labels::labels::{Labels, METRIC_NAME};
use notation::Slot;

/// A unit-test file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files under test, relative to this file.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub rule_files: Vec<String>,
    /// How often rules are evaluated (default 1m).
    #[serde(default)]
    pub evaluation_interval: Option<PromDuration>,
    /// Group names in the order to evaluate them; others follow.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub group_eval_order: Vec<String>,
    /// The test groups.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub tests: Vec<TestGroup>,
}

/// One test group: input series and the expectations over them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    /// Time between input samples (default: the evaluation interval).
    #[serde(default)]
    pub interval: Option<PromDuration>,
    /// The input series.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub input_series: Vec<InputSeries>,
    /// Alert expectations.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub alert_rule_test: Vec<AlertTest>,
    /// Expression expectations.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub promql_expr_test: Vec<ExprTest>,
    /// `$externalLabels` for templates.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub external_labels: BTreeMap<String, String>,
    /// `$externalURL` (accepted; templates here do not use it).
    #[serde(default)]
    pub external_url: Option<String>,
    /// A name shown in failures.
    #[serde(default)]
    pub name: Option<String>,
}

/// One input series.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    /// `metric{label="value"}`.
    pub series: String,
    /// Values in expanding notation.
    pub values: String,
}

/// Which alerts of one name fire at one time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTest {
    /// When to look.
    pub eval_time: PromDuration,
    /// The alert name.
    pub alertname: String,
    /// The firing alerts expected (none when empty).
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub exp_alerts: Vec<ExpectedAlert>,
}

/// One expected firing alert.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    /// Its labels, without `alertname`.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub exp_labels: BTreeMap<String, String>,
    /// Its expanded annotations.
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub exp_annotations: BTreeMap<String, String>,
}

/// An expression's expected result at one time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExprTest {
    /// The expression.
    pub expr: String,
    /// When to evaluate it.
    pub eval_time: PromDuration,
    /// The expected samples (none when empty).
    #[serde(default, deserialize_with = "crate::rulefmt::null_as_default")]
    pub exp_samples: Vec<ExpectedSample>,
}

/// One expected sample.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSample {
    /// `metric{label="value"}`.
    #[serde(default)]
    pub labels: String,
    /// The exact value.
    pub value: f64,
}

/// The outcome of one test file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOutcome {
    /// Whether every test group passed.
    pub passed: bool,
    /// promtool-shaped report text.
    pub report: String,
    /// Per test group, whether it passed (empty when the file failed to load).
    pub groups_passed: Vec<bool>,
}

/// Runs one unit-test file.
pub fn run_file(path: &Path) -> FileOutcome {
    let mut report = format!("Unit Testing:  {}\n", path.display());
    let file: TestFile = match config_file::load(path) {
        Ok(file) => file,
        Err(problems) => {
            let _ = writeln!(report, "  FAILED:\n{problems}");
            return FileOutcome {
                passed: false,
                report,
                groups_passed: Vec::new(),
            };
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut specs: Vec<GroupSpec> = Vec::new();
    for rule_file in &file.rule_files {
        let rule_path = if Path::new(rule_file).is_absolute() {
            PathBuf::from(rule_file)
        } else {
            base.join(rule_file)
        };
        match rulefmt::load(&rule_path) {
            Ok(groups) => specs.extend(groups),
            Err(problems) => {
                let _ = writeln!(report, "  FAILED:\n{problems}");
                return FileOutcome {
                    passed: false,
                    report,
                    groups_passed: Vec::new(),
                };
            }
        }
    }
    // Groups named in group_eval_order run first, in that order.
    specs.sort_by_key(|spec| {
        file.group_eval_order
            .iter()
            .position(|name| *name == spec.name)
            .unwrap_or(usize::MAX)
    });
    let evaluation_interval = file
        .evaluation_interval
        .map(millis)
        .unwrap_or(60_000)
        .max(1);
    let mut failures = Vec::new();
    let mut groups_passed = Vec::new();
    for test in &file.tests {
        let errors = run_group(test, &specs, evaluation_interval);
        groups_passed.push(errors.is_empty());
        if !errors.is_empty() {
            // promtool 2.x prints no group name; the failures alone, so the
            // two reports can be compared line by line.
            failures.push(errors.join("\n"));
        }
    }
    if failures.is_empty() {
        report.push_str("  SUCCESS\n");
    } else {
        let _ = writeln!(report, "  FAILED:\n{}", failures.join("\n"));
    }
    FileOutcome {
        passed: failures.is_empty(),
        report,
        groups_passed,
    }
}

/// Runs one test group; returns its failures.
pub fn run_group(
    test: &TestGroup,
    specs: &[GroupSpec],
    evaluation_interval: Millis,
) -> Vec<String> {
    let mut errors = Vec::new();
    let interval = test
        .interval
        .map(millis)
        .unwrap_or(evaluation_interval)
        .max(1);
    let mut storage = Storage::default();
    for input in &test.input_series {
        let labels = match parse_series(&input.series) {
            Ok(labels) => labels,
            Err(error) => {
                errors.push(format!("    input series {:?}: {error}", input.series));
                continue;
            }
        };
        let slots = match notation::expand(&input.values) {
            Ok(slots) => slots,
            Err(error) => {
                errors.push(format!("    input series {:?}: {error}", input.series));
                continue;
            }
        };
        for (step, slot) in slots.into_iter().enumerate() {
            if let Slot::Value(value) = slot {
                let _ = storage.append(&labels, step as Millis * interval, value);
            }
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    let options = EvalOptions {
        external_labels: test.external_labels.clone(),
        default_subquery_step: evaluation_interval,
        ..EvalOptions::default()
    };
    let mut groups: Vec<Group> = specs.iter().cloned().map(Group::new).collect();
    let mut alert_times: Vec<Millis> = test
        .alert_rule_test
        .iter()
        .map(|t| millis(t.eval_time))
        .collect();
    alert_times.sort_unstable();
    alert_times.dedup();
    let max_time = alert_times
        .iter()
        .copied()
        .chain(test.promql_expr_test.iter().map(|t| millis(t.eval_time)))
        .max()
        .unwrap_or(0);
    let mut next_alert_time = 0;
    let mut ts = 0;
    while ts <= max_time {
        for group in &mut groups {
            for failure in group.eval(&mut storage, ts, &options) {
                errors.push(format!(
                    "    rule: {}, time: {}, err: {}",
                    failure.rule,
                    show_time(ts),
                    failure.message
                ));
            }
        }
        // Alert expectations between this evaluation and the next are
        // checked against this evaluation, as promtool does.
        while next_alert_time < alert_times.len()
            && ts <= alert_times[next_alert_time]
            && alert_times[next_alert_time] < ts + evaluation_interval
        {
            let time = alert_times[next_alert_time];
            for alert_test in test
                .alert_rule_test
                .iter()
                .filter(|t| millis(t.eval_time) == time)
            {
                check_alerts(alert_test, &groups, &mut errors);
            }
            next_alert_time += 1;
        }
        ts += evaluation_interval;
    }
    for expr_test in &test.promql_expr_test {
        check_expr(expr_test, &storage, evaluation_interval, &mut errors);
    }
    errors
}

fn check_alerts(test: &AlertTest, groups: &[Group], errors: &mut Vec<String>) {
    let mut got: Vec<(Labels, Labels)> = Vec::new();
    for group in groups {
        for rule in &group.rules {
            if let crate::group::Rule::Alert(rule) = rule
                && rule.name == test.alertname
            {
                for alert in rule.firing() {
                    got.push((
                        alert.labels.clone(),
                        Labels::from_pairs(
                            alert
                                .annotations
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str())),
                        ),
                    ));
                }
            }
        }
    }
    let mut expected: Vec<(Labels, Labels)> = test
        .exp_alerts
        .iter()
        .map(|alert| {
            let mut labels = Labels::from_pairs(
                alert
                    .exp_labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            labels.set("alertname", &test.alertname);
            (
                labels,
                Labels::from_pairs(
                    alert
                        .exp_annotations
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                ),
            )
        })
        .collect();
    got.sort();
    expected.sort();
    if got != expected {
        errors.push(format!(
            "    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
            test.alertname,
            show_time(millis(test.eval_time)),
            show_alerts(&expected),
            show_alerts(&got)
        ));
    }
}

fn show_alerts(alerts: &[(Labels, Labels)]) -> String {
    if alerts.is_empty() {
        return "[]".to_string();
    }
    let mut out = String::from("[\n");
    for (index, (labels, annotations)) in alerts.iter().enumerate() {
        let separator = if index + 1 < alerts.len() { "," } else { "" };
        let _ = writeln!(
            out,
            "            {index}:\n              Labels:{labels}\n              Annotations:{annotations}{separator}"
        );
    }
    out.push_str("            ]");
    out
}

fn check_expr(
    test: &ExprTest,
    storage: &Storage,
    evaluation_interval: Millis,
    errors: &mut Vec<String>,
) {
    let time = millis(test.eval_time);
    let mut evaluator = Evaluator::new(storage);
    evaluator.default_subquery_step = evaluation_interval;
    let result = parse_expr(&test.expr).and_then(|expr| evaluator.instant(&expr, time));
    let got = match result {
        Ok(Value::Vector(samples)) => samples
            .into_iter()
            .map(|sample| (sample.labels, sample.value))
            .collect::<Vec<_>>(),
        Ok(Value::Scalar(value)) => vec![(Labels::default(), value)],
        Ok(other) => {
            let _ = other;
            errors.push(format!(
                "    expr: {:?}, time: {}, err: rule result is not a vector or scalar",
                test.expr,
                show_time(time),
            ));
            return;
        }
        Err(error) => {
            errors.push(format!(
                "    expr: {:?}, time: {}, err: {error}",
                test.expr,
                show_time(time)
            ));
            return;
        }
    };
    let mut expected = Vec::new();
    for sample in &test.exp_samples {
        match parse_series(&sample.labels) {
            Ok(labels) => expected.push((labels, sample.value)),
            Err(error) => {
                errors.push(format!(
                    "    expr: {:?}, time: {}, err: bad exp_samples labels {:?}: {error}",
                    test.expr,
                    show_time(time),
                    sample.labels
                ));
                return;
            }
        }
    }
    let by_labels = |a: &(Labels, f64), b: &(Labels, f64)| a.0.cmp(&b.0);
    let mut got = got;
    got.sort_by(by_labels);
    expected.sort_by(by_labels);
    // Exact comparison (NaN never equals), as promtool's reflect.DeepEqual.
    let equal = got.len() == expected.len()
        && got
            .iter()
            .zip(&expected)
            .all(|(g, e)| g.0 == e.0 && g.1 == e.1);
    if !equal {
        errors.push(format!(
            "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
            test.expr,
            show_time(time),
            show_samples(&expected),
            show_samples(&got)
        ));
    }
}

fn show_samples(samples: &[(Labels, f64)]) -> String {
    if samples.is_empty() {
        return "nil".to_string();
    }
    samples
        .iter()
        .map(|(labels, value)| format!("{labels} {}", go_float_e(*value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`, which promtool prints
/// values with, so that both tools' reports read the same.
pub fn go_float_e(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let scientific = format!("{value:E}");
    let (mantissa, exponent) = scientific.split_once('E').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}E{sign}{:02}", exponent.abs())
}

/// Why a series in a test file is not `metric{label="value", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    /// It does not parse as PromQL.
    #[error(transparent)]
    Parse(#[from] crate::promql::EvalError),
    /// It parses, but not as a plain selector.
    #[error("expected a series like metric{{label=\"value\"}}")]
    NotASeries,
    /// A matcher other than `=`.
    #[error("only = is allowed in a series, got {matcher}")]
    NotEqual {
        /// The matcher as PromQL writes it.
        matcher: String,
    },
}

/// Parses `metric{label="value", ...}` (or `{...}` without a name) into labels.
pub fn parse_series(text: &str) -> Result<Labels, SeriesError> {
    let text = text.trim();
    if text.is_empty() || text == "{}" {
        return Ok(Labels::default());
    }
    // A selector without a name may have only empty-matching matchers,
    // which PromQL refuses; a placeholder name sidesteps that.
    let unnamed = text.starts_with('{');
    let source = if unnamed {
        format!("placeholder{text}")
    } else {
        text.to_string()
    };
    let expr = parse_expr(&source)?;
    let Expr::VectorSelector(selector) = expr else {
        return Err(SeriesError::NotASeries);
    };
    let mut labels = Labels::default();
    if let Some(name) = &selector.name
        && !unnamed
    {
        labels.set(METRIC_NAME, name);
    }
    for matcher in &selector.matchers.matchers {
        if !matches!(matcher.op, MatchOp::Equal) {
            return Err(SeriesError::NotEqual {
                matcher: matcher.to_string(),
            });
        }
        labels.set(&matcher.name, &matcher.value);
    }
    Ok(labels)
}

fn millis(duration: PromDuration) -> Millis {
    Millis::try_from(duration.get().as_millis()).unwrap_or(Millis::MAX)
}

fn show_time(t: Millis) -> String {
    PromDuration(std::time::Duration::from_millis(t.max(0) as u64)).to_string()
}
