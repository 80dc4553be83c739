//! Element-wise math over an instant vector. Every one drops the metric
//! name, since the result is no longer that metric.

use promql_parser::parser::Expr;

use super::super::eval::Evaluator;
use super::super::{EvalError, Sample, Value};
use super::{arg, go_max, go_min};
use crate::storage::Millis;

/// Evaluates `name` if it is a math function; `None` otherwise.
pub fn eval(
    evaluator: &Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    t: Millis,
) -> Result<Option<Value>, EvalError> {
    let simple: Option<fn(f64) -> f64> = match name {
        "abs" => Some(f64::abs),
        "ceil" => Some(f64::ceil),
        "floor" => Some(f64::floor),
        "exp" => Some(f64::exp),
        "ln" => Some(super::super::go_math::ln),
        "log2" => Some(super::super::go_math::log2),
        "log10" => Some(super::super::go_math::log10),
        "sqrt" => Some(f64::sqrt),
        "sgn" => Some(|v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        }),
        _ => None,
    };
    let scalar = |index: usize| -> Result<f64, EvalError> {
        evaluator.eval_scalar(arg(args, index, name)?, t)
    };
    let input = || evaluator.eval_vector(arg(args, 0, name)?, t);
    let out = if let Some(function) = simple {
        map(input()?, t, function)
    } else {
        match name {
            "round" => {
                let to_nearest = if args.len() > 1 { scalar(1)? } else { 1.0 };
                let inverse = 1.0 / to_nearest;
                map(input()?, t, |v| (v * inverse + 0.5).floor() / inverse)
            }
            "clamp" => {
                let (min, max) = (scalar(1)?, scalar(2)?);
                if max < min {
                    Vec::new()
                } else {
                    map(input()?, t, |v| go_max(min, go_min(max, v)))
                }
            }
            "clamp_min" => {
                let min = scalar(1)?;
                map(input()?, t, |v| go_max(min, v))
            }
            "clamp_max" => {
                let max = scalar(1)?;
                map(input()?, t, |v| go_min(max, v))
            }
            _ => return Ok(None),
        }
    };
    Ok(Some(Value::Vector(out)))
}

fn map(input: Vec<Sample>, t: Millis, function: impl Fn(f64) -> f64) -> Vec<Sample> {
    input
        .into_iter()
        .map(|sample| Sample {
            labels: sample.labels.without_name(),
            value: function(sample.value),
            timestamp: t,
        })
        .collect()
}
