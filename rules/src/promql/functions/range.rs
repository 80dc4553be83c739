//! Functions over range vectors: counters (`rate`, `increase`, `irate`),
//! gauges (`delta`, `idelta`, `deriv`, `predict_linear`), sample events
//! (`changes`, `resets`) and the `*_over_time` family.

use promql_parser::parser::Expr;

use super::super::aggregate::quantile;
use super::super::eval::{Evaluator, millis};
use super::super::{EvalError, RangeSeries, Sample, Value};
use super::arg;
use crate::storage::Millis;

/// A range argument with the window it covers, which `rate` extrapolates to.
struct Window {
    series: Vec<RangeSeries>,
    start: Millis,
    end: Millis,
}

/// Evaluates `name` if it is a range function; `None` otherwise.
pub fn eval(
    evaluator: &Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    t: Millis,
) -> Result<Option<Value>, EvalError> {
    let (range_index, keeps_name) = match name {
        "rate" | "irate" | "increase" | "delta" | "idelta" | "deriv" | "predict_linear"
        | "resets" | "changes" | "avg_over_time" | "min_over_time" | "max_over_time"
        | "sum_over_time" | "count_over_time" | "stddev_over_time" | "stdvar_over_time"
        | "present_over_time" => (0, false),
        "last_over_time" => (0, true),
        "quantile_over_time" => (1, false),
        "absent_over_time" => {
            let window = window(evaluator, arg(args, 0, name)?, t)?;
            return Ok(Some(super::misc::absent_result(
                window.series.is_empty(),
                arg(args, 0, name)?,
                t,
            )));
        }
        _ => return Ok(None),
    };
    let window = window(evaluator, arg(args, range_index, name)?, t)?;
    let scalar_arg = |index: usize| -> Result<f64, EvalError> {
        evaluator.eval_scalar(arg(args, index, name)?, t)
    };
    let parameter = match name {
        "quantile_over_time" => scalar_arg(0)?,
        "predict_linear" => scalar_arg(1)?,
        _ => 0.0,
    };
    let range_seconds = window.end.saturating_sub(window.start) as f64 / 1000.0;
    let mut out = Vec::with_capacity(window.series.len());
    for series in window.series {
        let points = &series.points;
        let value = match name {
            "rate" => {
                extrapolated_rate(points, window.start, window.end, true, true, range_seconds)
            }
            "increase" => {
                extrapolated_rate(points, window.start, window.end, true, false, range_seconds)
            }
            "delta" => extrapolated_rate(
                points,
                window.start,
                window.end,
                false,
                false,
                range_seconds,
            ),
            "irate" => instant_value(points, true),
            "idelta" => instant_value(points, false),
            "deriv" => {
                if points.len() < 2 {
                    None
                } else {
                    Some(linear_regression(points, points[0].0).0)
                }
            }
            "predict_linear" => {
                if points.len() < 2 {
                    None
                } else {
                    let (slope, intercept) = linear_regression(points, t);
                    Some(slope * parameter + intercept)
                }
            }
            "changes" => Some(count_pairs(points, |previous, current| {
                current != previous && !(current.is_nan() && previous.is_nan())
            })),
            "resets" => Some(count_pairs(points, |previous, current| current < previous)),
            "avg_over_time" => Some(average(points)),
            "min_over_time" => Some(fold_first(points, |acc, v| {
                if v < acc || acc.is_nan() { v } else { acc }
            })),
            "max_over_time" => Some(fold_first(points, |acc, v| {
                if v > acc || acc.is_nan() { v } else { acc }
            })),
            "sum_over_time" => Some(kahan_sum(points)),
            "count_over_time" => Some(points.len() as f64),
            "last_over_time" => points.last().map(|(_, v)| *v),
            "present_over_time" => Some(1.0),
            "stddev_over_time" => Some(variance(points).sqrt()),
            "stdvar_over_time" => Some(variance(points)),
            "quantile_over_time" => {
                let mut values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
                Some(quantile(parameter, &mut values))
            }
            _ => None,
        };
        if let Some(value) = value {
            out.push(Sample {
                labels: if keeps_name {
                    series.labels
                } else {
                    series.labels.without_name()
                },
                value,
                timestamp: t,
            });
        }
    }
    Ok(Some(Value::Vector(out)))
}

/// Evaluates a range argument (selector or subquery) and its window.
fn window(evaluator: &Evaluator<'_>, expr: &Expr, t: Millis) -> Result<Window, EvalError> {
    let (end, range) = match expr {
        Expr::MatrixSelector(matrix) => (
            evaluator.shift(t, matrix.vs.offset.as_ref(), matrix.vs.at.as_ref())?,
            millis(matrix.range),
        ),
        Expr::Subquery(subquery) => (
            evaluator.shift(t, subquery.offset.as_ref(), subquery.at.as_ref())?,
            millis(subquery.range),
        ),
        Expr::Paren(paren) => return window(evaluator, &paren.expr, t),
        _ => (t, 0),
    };
    Ok(Window {
        series: evaluator.eval_matrix(expr, t)?,
        start: end.saturating_sub(range),
        end,
    })
}

/// Prometheus's `extrapolatedRate`: the change over the samples, corrected
/// for counter resets, extrapolated towards the window's edges unless a
/// gap suggests the series started or ended inside it.
fn extrapolated_rate(
    points: &[(Millis, f64)],
    range_start: Millis,
    range_end: Millis,
    is_counter: bool,
    is_rate: bool,
    range_seconds: f64,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first_t, first_v) = points[0];
    let (last_t, last_v) = points[points.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        let mut last_value = 0.0;
        for (_, value) in points {
            if *value < last_value {
                result += last_value;
            }
            last_value = *value;
        }
    }
    let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_between = sampled_interval / (points.len() - 1) as f64;
    if is_counter && result > 0.0 && first_v >= 0.0 {
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold {
        duration_to_start
    } else {
        average_between / 2.0
    };
    extrapolate_to += if duration_to_end < threshold {
        duration_to_end
    } else {
        average_between / 2.0
    };
    // The factor is built first and applied once, as Prometheus 2.x does;
    // the order matters for the last bit of the result.
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= range_seconds;
    }
    result *= factor;
    Some(result)
}

/// `irate`/`idelta`: from the last two samples only.
fn instant_value(points: &[(Millis, f64)], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (last_t, last_v) = points[points.len() - 1];
    let (previous_t, previous_v) = points[points.len() - 2];
    let mut result = if is_rate && last_v < previous_v {
        last_v
    } else {
        last_v - previous_v
    };
    let interval = last_t - previous_t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Neumaier-compensated addition, as Prometheus's `kahanSumInc`.
fn kahan_add(increment: f64, sum: f64, compensation: f64) -> (f64, f64) {
    let total = sum + increment;
    let compensation = if sum.abs() >= increment.abs() {
        compensation + ((sum - total) + increment)
    } else {
        compensation + ((increment - total) + sum)
    };
    (total, compensation)
}

/// Least-squares slope and intercept, x in seconds from `intercept_time`.
fn linear_regression(points: &[(Millis, f64)], intercept_time: Millis) -> (f64, f64) {
    let initial = points[0].1;
    let mut constant = true;
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    for (index, (t, v)) in points.iter().enumerate() {
        if constant && index > 0 && *v != initial {
            constant = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_add(x, sum_x, c_x);
        (sum_y, c_y) = kahan_add(*v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_add(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_add(x * x, sum_x2, c_x2);
    }
    if constant {
        if initial.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, initial);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let covariance = sum_xy - sum_x * sum_y / n;
    let variance_x = sum_x2 - sum_x * sum_x / n;
    let slope = covariance / variance_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// How many consecutive pairs satisfy `predicate(previous, current)`.
fn count_pairs(points: &[(Millis, f64)], predicate: impl Fn(f64, f64) -> bool) -> f64 {
    points
        .windows(2)
        .filter(|pair| predicate(pair[0].1, pair[1].1))
        .count() as f64
}

/// Folds from the first value, as `min_over_time`/`max_over_time` do.
fn fold_first(points: &[(Millis, f64)], step: impl Fn(f64, f64) -> f64) -> f64 {
    let mut values = points.iter().map(|(_, v)| *v);
    let first = values.next().unwrap_or(f64::NAN);
    values.fold(first, step)
}

/// `avg_over_time`: a running mean (no overflow on large values) with
/// compensated addition, as Prometheus 2.42 computes it.
fn average(points: &[(Millis, f64)]) -> f64 {
    let (mut mean, mut compensation, mut count) = (0.0_f64, 0.0, 0.0);
    for (_, value) in points {
        count += 1.0;
        if mean.is_infinite() {
            if value.is_infinite() && (mean > 0.0) == (*value > 0.0) {
                continue;
            }
            if !value.is_infinite() && !value.is_nan() {
                continue;
            }
        }
        (mean, compensation) = kahan_add(value / count - mean / count, mean, compensation);
    }
    if mean.is_infinite() {
        mean
    } else {
        mean + compensation
    }
}

/// `sum_over_time` with compensated addition.
fn kahan_sum(points: &[(Millis, f64)]) -> f64 {
    let (mut sum, mut compensation) = (0.0, 0.0);
    for (_, value) in points {
        (sum, compensation) = kahan_add(*value, sum, compensation);
    }
    if f64::is_infinite(sum) {
        sum
    } else {
        sum + compensation
    }
}

/// Population variance by Welford's method with compensated addition.
fn variance(points: &[(Millis, f64)]) -> f64 {
    let (mut count, mut mean, mut mean_c, mut aux, mut aux_c) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (_, value) in points {
        count += 1.0;
        let delta = value - (mean + mean_c);
        (mean, mean_c) = kahan_add(delta / count, mean, mean_c);
        (aux, aux_c) = kahan_add(delta * (value - (mean + mean_c)), aux, aux_c);
    }
    (aux + aux_c) / count
}
