//! The function library: [`eval`] dispatches a call by name to its family.
//!
//! - [`range`]: functions over range vectors (`rate`, `*_over_time`, ...).
//! - [`math`]: element-wise arithmetic (`abs`, `round`, `clamp`, ...).
//! - [`labels`]: `label_replace` and `label_join`.
//! - [`time`]: `time`, `timestamp` and the calendar functions.
//! - [`histogram`]: `histogram_quantile` over classic `le` buckets.
//! - [`misc`]: `vector`, `scalar`, `sort`, `absent`.

pub mod histogram;
pub mod labels;
pub mod math;
pub mod misc;
pub mod range;
pub mod time;

use countywatch_labels::labels::FastSet as HashSet;

use promql_parser::parser::{Call, Expr};

use super::eval::Evaluator;
use super::{EvalError, Sample, Value};
use crate::storage::Millis;

/// Evaluates a function call at `t`.
pub fn eval(evaluator: &Evaluator<'_>, call: &Call, t: Millis) -> Result<Value, EvalError> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|arg| arg.as_ref()).collect();
    let value = if let Some(value) = range::eval(evaluator, name, &args, t)? {
        value
    } else if let Some(value) = math::eval(evaluator, name, &args, t)? {
        value
    } else if let Some(value) = time::eval(evaluator, name, &args, t)? {
        value
    } else if let Some(value) = labels::eval(evaluator, name, &args, t)? {
        value
    } else if let Some(value) = misc::eval(evaluator, name, &args, t)? {
        value
    } else if name == "histogram_quantile" {
        histogram::eval(evaluator, &args, t)?
    } else {
        return Err(EvalError::new(format!(
            "function {name}() is not supported"
        )));
    };
    if let Value::Vector(samples) = &value {
        ensure_unique(samples)?;
    }
    Ok(value)
}

/// Prometheus refuses a function result in which two elements share a
/// label set (possible once the metric name is dropped).
pub fn ensure_unique(samples: &[Sample]) -> Result<(), EvalError> {
    if samples.len() < 2 {
        return Ok(());
    }
    let mut seen = HashSet::with_capacity_and_hasher(samples.len(), Default::default());
    for sample in samples {
        if !seen.insert(&sample.labels) {
            return Err(EvalError::new(
                "vector cannot contain metrics with the same labelset",
            ));
        }
    }
    Ok(())
}

/// The argument at `index`, or a clear error when the call has too few.
pub(crate) fn arg<'e>(args: &[&'e Expr], index: usize, name: &str) -> Result<&'e Expr, EvalError> {
    args.get(index).copied().ok_or_else(|| {
        EvalError::new(format!(
            "expected at least {} argument(s) in call to {name:?}, got {}",
            index + 1,
            args.len()
        ))
    })
}

/// Go's `math.Max`: infinities win, then NaN propagates (Rust's `max`
/// would ignore the NaN).
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        f64::INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() { y } else { x }
    } else if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`, the mirror of [`go_max`].
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() { x } else { y }
    } else if x < y {
        x
    } else {
        y
    }
}
