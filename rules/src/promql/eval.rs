//! The evaluator: walks a parsed expression at one instant, reading the
//! store for selectors and delegating operators, aggregations and functions
//! to their own modules.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::Matchers;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::{EvalError, RangeSeries, Sample, Value, aggregate, binary, functions};
use crate::storage::{Millis, Storage};
use countywatch_labels::labels::{Labels, METRIC_NAME};

/// Most steps one subquery may evaluate, so that `x[1y:1s]` fails fast
/// instead of running for hours.
pub const MAX_SUBQUERY_STEPS: Millis = 100_000;

/// Prometheus's default lookback for instant selectors: five minutes.
pub const DEFAULT_LOOKBACK: Millis = 5 * 60 * 1000;

/// Parses a PromQL expression; an error says where in the text it is
/// (`1:6: parse error: ...`), as Prometheus's parser does.
pub fn parse_expr(text: &str) -> Result<Expr, EvalError> {
    super::parse_guard::parse(text)
        .map_err(|error| EvalError::new(super::syntax_error::describe(text, &error.to_string())))
}

/// Evaluates expressions against a store.
#[derive(Clone, Debug)]
pub struct Evaluator<'a> {
    /// Where selectors read samples.
    pub storage: &'a Storage,
    /// How far back an instant selector looks for a sample.
    pub lookback: Millis,
    /// Step of a subquery written without one (`[1h:]`): the rule group's
    /// interval, as Prometheus uses its global evaluation interval.
    pub default_subquery_step: Millis,
    /// Most samples any intermediate result may hold; beyond it evaluation
    /// fails instead of exhausting memory on a cardinality explosion.
    pub max_samples: usize,
    /// Evaluation gives up with an error once this instant has passed.
    pub deadline: Option<Instant>,
    /// The query's own time, which `@ start()` and `@ end()` name.
    query_time: Millis,
}

impl<'a> Evaluator<'a> {
    /// An evaluator with Prometheus's defaults.
    pub fn new(storage: &'a Storage) -> Evaluator<'a> {
        Evaluator {
            storage,
            lookback: DEFAULT_LOOKBACK,
            default_subquery_step: 60_000,
            max_samples: 50_000_000,
            deadline: None,
            query_time: 0,
        }
    }

    /// Evaluates `expr` as an instant query at `t`.
    pub fn instant(&self, expr: &Expr, t: Millis) -> Result<Value, EvalError> {
        let evaluator = Evaluator {
            query_time: t,
            ..self.clone()
        };
        evaluator.eval(expr, t)
    }

    /// Evaluates a sub-expression at `t`.
    pub(crate) fn eval(&self, expr: &Expr, t: Millis) -> Result<Value, EvalError> {
        if let Some(deadline) = self.deadline
            && Instant::now() > deadline
        {
            return Err(EvalError::new("evaluation exceeded its time budget"));
        }
        let value = match expr {
            Expr::NumberLiteral(number) => Value::Scalar(number.val),
            Expr::StringLiteral(string) => Value::String(string.val.clone()),
            Expr::Paren(paren) => self.eval(&paren.expr, t)?,
            Expr::Unary(unary) => match self.eval(&unary.expr, t)? {
                Value::Scalar(value) => Value::Scalar(-value),
                Value::Vector(samples) => Value::Vector(
                    samples
                        .into_iter()
                        .map(|sample| Sample {
                            labels: sample.labels.without_name(),
                            value: -sample.value,
                            timestamp: t,
                        })
                        .collect(),
                ),
                other => {
                    return Err(EvalError::new(format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                        other.type_name()
                    )));
                }
            },
            Expr::VectorSelector(selector) => Value::Vector(self.select_instant(selector, t)?),
            Expr::MatrixSelector(matrix) => {
                let range = millis(matrix.range);
                Value::Matrix(self.select_range(&matrix.vs, range, t)?)
            }
            Expr::Subquery(subquery) => {
                let end = self.shift(t, subquery.offset.as_ref(), subquery.at.as_ref())?;
                let step = match subquery.step {
                    Some(step) if !step.is_zero() => millis(step),
                    _ => self.default_subquery_step,
                };
                Value::Matrix(self.subquery(&subquery.expr, millis(subquery.range), step, end)?)
            }
            Expr::Binary(binary_expr) => binary::eval(self, binary_expr, t)?,
            Expr::Aggregate(aggregate_expr) => aggregate::eval(self, aggregate_expr, t)?,
            Expr::Call(call) => functions::eval(self, call, t)?,
            Expr::Extension(_) => {
                return Err(EvalError::new("extension expressions are not supported"));
            }
        };
        let size = match &value {
            Value::Vector(samples) => samples.len(),
            Value::Matrix(series) => series.iter().map(|series| series.points.len()).sum(),
            _ => 0,
        };
        if size > self.max_samples {
            return Err(EvalError::new(format!(
                "query processing would load too many samples into memory ({size} > limit {})",
                self.max_samples
            )));
        }
        Ok(value)
    }

    /// Evaluates `expr` and requires an instant vector.
    pub(crate) fn eval_vector(&self, expr: &Expr, t: Millis) -> Result<Vec<Sample>, EvalError> {
        match self.eval(expr, t)? {
            Value::Vector(samples) => Ok(samples),
            other => Err(EvalError::new(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `expr` and requires a scalar.
    pub(crate) fn eval_scalar(&self, expr: &Expr, t: Millis) -> Result<f64, EvalError> {
        match self.eval(expr, t)? {
            Value::Scalar(value) => Ok(value),
            other => Err(EvalError::new(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `expr` and requires a range vector.
    pub(crate) fn eval_matrix(
        &self,
        expr: &Expr,
        t: Millis,
    ) -> Result<Vec<RangeSeries>, EvalError> {
        match self.eval(expr, t)? {
            Value::Matrix(series) => Ok(series),
            other => Err(EvalError::new(format!(
                "expected range vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// The time a selector reads at, after `@` and `offset`.
    pub(crate) fn shift(
        &self,
        t: Millis,
        offset: Option<&Offset>,
        at: Option<&AtModifier>,
    ) -> Result<Millis, EvalError> {
        let base = match at {
            None => t,
            Some(AtModifier::Start) | Some(AtModifier::End) => self.query_time,
            Some(AtModifier::At(time)) => system_time_millis(*time)?,
        };
        // Saturating: `offset 100000y` must give an empty result, not overflow.
        Ok(match offset {
            None => base,
            Some(Offset::Pos(duration)) => base.saturating_sub(millis(*duration)),
            Some(Offset::Neg(duration)) => base.saturating_add(millis(*duration)),
        })
    }

    /// An instant selector: each matching series' newest sample within the
    /// lookback window.
    pub(crate) fn select_instant(
        &self,
        selector: &VectorSelector,
        t: Millis,
    ) -> Result<Vec<Sample>, EvalError> {
        let t = self.shift(t, selector.offset.as_ref(), selector.at.as_ref())?;
        let filter = Filter::new(selector);
        let mut out = Vec::new();
        for (labels, series) in self.storage.candidates(filter.name) {
            if !filter.matches(labels) {
                continue;
            }
            if let Some((timestamp, value)) = series.instant(t, self.lookback) {
                out.push(Sample {
                    labels: labels.clone(),
                    value,
                    timestamp,
                });
            }
        }
        Ok(out)
    }

    /// A range selector: each matching series' samples in `[t - range, t]`.
    pub(crate) fn select_range(
        &self,
        selector: &VectorSelector,
        range: Millis,
        t: Millis,
    ) -> Result<Vec<RangeSeries>, EvalError> {
        let t = self.shift(t, selector.offset.as_ref(), selector.at.as_ref())?;
        let filter = Filter::new(selector);
        let mut out = Vec::new();
        for (labels, series) in self.storage.candidates(filter.name) {
            if !filter.matches(labels) {
                continue;
            }
            let points = series.range(t.saturating_sub(range), t);
            if !points.is_empty() {
                out.push(RangeSeries {
                    labels: labels.clone(),
                    points,
                });
            }
        }
        Ok(out)
    }

    /// A subquery: `expr` evaluated at every multiple of `step` in
    /// `[end - range, end]`, collected per series.
    fn subquery(
        &self,
        expr: &Expr,
        range: Millis,
        step: Millis,
        end: Millis,
    ) -> Result<Vec<RangeSeries>, EvalError> {
        let step = step.max(1);
        let start = end.saturating_sub(range);
        if range / step > MAX_SUBQUERY_STEPS {
            return Err(EvalError::new(format!(
                "subquery would evaluate more than {MAX_SUBQUERY_STEPS} steps; use a larger step"
            )));
        }
        let mut t = step.saturating_mul(start.div_euclid(step));
        if t < start {
            t = t.saturating_add(step);
        }
        let mut collected: BTreeMap<Labels, Vec<(Millis, f64)>> = BTreeMap::new();
        while t <= end {
            match self.eval(expr, t)? {
                Value::Vector(samples) => {
                    for sample in samples {
                        collected
                            .entry(sample.labels)
                            .or_default()
                            .push((t, sample.value));
                    }
                }
                Value::Scalar(value) => collected
                    .entry(Labels::default())
                    .or_default()
                    .push((t, value)),
                other => {
                    return Err(EvalError::new(format!(
                        "subquery is only allowed on instant vector, got {} instead",
                        other.type_name()
                    )));
                }
            }
            t = match t.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
        Ok(collected
            .into_iter()
            .map(|(labels, points)| RangeSeries { labels, points })
            .collect())
    }
}

/// The metric name a selector pins, which narrows the candidate series.
fn selector_name(selector: &VectorSelector) -> Option<&str> {
    if let Some(name) = &selector.name {
        return Some(name);
    }
    if !selector.matchers.or_matchers.is_empty() {
        return None;
    }
    selector
        .matchers
        .matchers
        .iter()
        .find(|matcher| {
            matcher.name == METRIC_NAME
                && matches!(matcher.op, promql_parser::label::MatchOp::Equal)
        })
        .map(|matcher| matcher.value.as_str())
}

/// A selector prepared for matching many series: the metric name it pins
/// (the store's candidates all have it, so it is not checked again) and
/// the matchers left to check.
struct Filter<'s> {
    /// The pinned metric name, which narrows the candidates.
    name: Option<&'s str>,
    /// Matchers other than the one pinning the name.
    matchers: Vec<&'s promql_parser::label::Matcher>,
    /// The selector, for `or` groups (checked in full).
    selector: &'s VectorSelector,
}

impl<'s> Filter<'s> {
    fn new(selector: &'s VectorSelector) -> Filter<'s> {
        let name = selector_name(selector);
        let matchers = selector
            .matchers
            .matchers
            .iter()
            .filter(|matcher| {
                !(matcher.name == METRIC_NAME
                    && matches!(matcher.op, promql_parser::label::MatchOp::Equal)
                    && Some(matcher.value.as_str()) == name)
            })
            .collect();
        Filter {
            name,
            matchers,
            selector,
        }
    }

    /// Whether a candidate series (already of the pinned name) matches.
    fn matches(&self, labels: &Labels) -> bool {
        if !self.selector.matchers.or_matchers.is_empty() {
            return matches(self.selector, labels);
        }
        if self.name.is_none()
            && let Some(name) = &self.selector.name
            && labels.name() != name
        {
            return false;
        }
        self.matchers
            .iter()
            .all(|matcher| matcher.is_match(labels.get(&matcher.name)))
    }
}

/// Whether a series' labels satisfy a selector's name and matchers.
pub(crate) fn matches(selector: &VectorSelector, labels: &Labels) -> bool {
    if let Some(name) = &selector.name
        && labels.name() != name
    {
        return false;
    }
    matchers_match(&selector.matchers, labels)
}

/// Whether labels satisfy all matchers, or any `or` group of them.
pub(crate) fn matchers_match(matchers: &Matchers, labels: &Labels) -> bool {
    let all = |group: &[promql_parser::label::Matcher]| {
        group
            .iter()
            .all(|matcher| matcher.is_match(labels.get(&matcher.name)))
    };
    if matchers.or_matchers.is_empty() {
        all(&matchers.matchers)
    } else {
        matchers.or_matchers.iter().any(|group| all(group))
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: std::time::Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

fn system_time_millis(time: SystemTime) -> Result<Millis, EvalError> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => Ok(millis(after)),
        Err(before) => Ok(-millis(before.duration())),
    }
}
