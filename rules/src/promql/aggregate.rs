//! Aggregation operators with `by`/`without`, computed with the same
//! arithmetic as Prometheus 2.x (running mean for `avg`, Welford for
//! `stddev`/`stdvar`) so that results are bit-for-bit comparable.

use countywatch_labels::labels::FastMap as HashMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::Evaluator;
use super::{EvalError, Sample, Value, format_float};
use crate::storage::Millis;
use countywatch_labels::labels::Labels;

/// One output group's running state.
struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: f64,
    /// Members, for `topk`, `bottomk` and `quantile`.
    members: Vec<Sample>,
}

/// Evaluates an aggregation at `t`.
pub fn eval(
    evaluator: &Evaluator<'_>,
    expr: &AggregateExpr,
    t: Millis,
) -> Result<Value, EvalError> {
    let op = expr.op.id();
    let input = evaluator.eval_vector(&expr.expr, t)?;
    let mut parameter = 0.0;
    let mut value_label = String::new();
    if let Some(param) = &expr.param {
        match evaluator.eval(param, t)? {
            Value::Scalar(value) => parameter = value,
            Value::String(label) => value_label = label,
            other => {
                return Err(EvalError::new(format!(
                    "expected scalar or string parameter, got {}",
                    other.type_name()
                )));
            }
        }
    }
    if op == T_COUNT_VALUES && !is_valid_label_name(&value_label) {
        return Err(EvalError::new(format!(
            "invalid label name {value_label:?}"
        )));
    }
    let group_labels = |labels: &Labels| -> Labels {
        match &expr.modifier {
            Some(LabelModifier::Include(by)) => labels.keep_only(&by.labels),
            Some(LabelModifier::Exclude(without)) => labels.without_names(&without.labels, true),
            None => Labels::default(),
        }
    };
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, Group> = HashMap::default();
    for sample in input {
        let mut key = group_labels(&sample.labels);
        if op == T_COUNT_VALUES {
            key.set(&value_label, &format_float(sample.value));
        }
        let (group, created) = match groups.get_mut(&key) {
            Some(group) => (group, false),
            None => {
                order.push(key.clone());
                let group = groups.entry(key.clone()).or_insert(Group {
                    labels: key,
                    value: if op == T_STDDEV || op == T_STDVAR {
                        0.0
                    } else {
                        sample.value
                    },
                    mean: sample.value,
                    count: 1.0,
                    members: Vec::new(),
                });
                (group, true)
            }
        };
        match op {
            T_TOPK | T_BOTTOMK | T_QUANTILE => group.members.push(sample),
            _ => {
                // The first member initialised the group; the others update it.
                if created {
                    continue;
                }
                group.count += 1.0;
                let value = sample.value;
                match op {
                    T_SUM => group.value += value,
                    T_AVG => {
                        if group.mean.is_infinite() {
                            if value.is_infinite() && (group.mean > 0.0) == (value > 0.0) {
                                continue;
                            }
                            if !value.is_infinite() && !value.is_nan() {
                                continue;
                            }
                        }
                        group.mean += value / group.count - group.mean / group.count;
                    }
                    T_MAX => {
                        if group.value < value || group.value.is_nan() {
                            group.value = value;
                        }
                    }
                    T_MIN => {
                        if group.value > value || group.value.is_nan() {
                            group.value = value;
                        }
                    }
                    T_STDDEV | T_STDVAR => {
                        let delta = value - group.mean;
                        group.mean += delta / group.count;
                        group.value += delta * (value - group.mean);
                    }
                    T_COUNT | T_GROUP | T_COUNT_VALUES => {}
                    _ => {
                        return Err(EvalError::new(format!(
                            "aggregation {} is not supported",
                            expr.op
                        )));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for key in order {
        let Some(group) = groups.remove(&key) else {
            continue;
        };
        let value = match op {
            T_SUM | T_MAX | T_MIN => group.value,
            T_AVG => group.mean,
            T_COUNT | T_COUNT_VALUES => group.count,
            T_GROUP => 1.0,
            T_STDVAR => group.value / group.count,
            T_STDDEV => (group.value / group.count).sqrt(),
            T_QUANTILE => {
                let mut values: Vec<f64> = group.members.iter().map(|s| s.value).collect();
                quantile(parameter, &mut values)
            }
            T_TOPK | T_BOTTOMK => {
                out.extend(select_k(group.members, parameter, op == T_TOPK, t));
                continue;
            }
            _ => continue,
        };
        out.push(Sample {
            labels: group.labels,
            value,
            timestamp: t,
        });
    }
    Ok(Value::Vector(out))
}

/// `topk`/`bottomk` within one group: Prometheus keeps a heap of `k`
/// and replaces its weakest only on a strictly better value, so among
/// ties the earlier series wins.
fn select_k(members: Vec<Sample>, k: f64, top: bool, t: Millis) -> Vec<Sample> {
    if k.is_nan() || k < 1.0 {
        return Vec::new();
    }
    let k = if k >= members.len() as f64 {
        members.len()
    } else {
        k as usize
    };
    let better = |a: f64, b: f64| -> bool {
        // Whether `a` should displace `b`.
        if top {
            b < a || (b.is_nan() && !a.is_nan())
        } else {
            b > a || (b.is_nan() && !a.is_nan())
        }
    };
    let mut kept: Vec<Sample> = Vec::with_capacity(k);
    for sample in members {
        if kept.len() < k {
            kept.push(sample);
            continue;
        }
        // The weakest kept element, as the heap's top would be.
        let mut weakest = 0;
        for (index, candidate) in kept.iter().enumerate() {
            if better(kept[weakest].value, candidate.value) {
                weakest = index;
            }
        }
        if better(sample.value, kept[weakest].value) {
            kept[weakest] = sample;
        }
    }
    kept.sort_by(|a, b| {
        let order = a
            .value
            .partial_cmp(&b.value)
            .unwrap_or(std::cmp::Ordering::Equal);
        if top { order.reverse() } else { order }
    });
    kept.into_iter()
        .map(|sample| Sample {
            timestamp: t,
            ..sample
        })
        .collect()
}

/// Prometheus's `quantile`: linear interpolation between closest ranks.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's sort puts NaN first, as vectorByValueHeap's Less does.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Whether `name` is a valid label name.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() || first == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
