//! `vector`, `scalar`, `sort`, `sort_desc` and `absent`: the functions that
//! convert between types or only reorder.

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;

use super::super::eval::Evaluator;
use super::super::{EvalError, Sample, Value};
use super::arg;
use crate::storage::Millis;
use countywatch_labels::labels::{Labels, METRIC_NAME};

/// Evaluates `name` if it is one of this family; `None` otherwise.
pub fn eval(
    evaluator: &Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    t: Millis,
) -> Result<Option<Value>, EvalError> {
    Ok(Some(match name {
        "vector" => Value::Vector(vec![Sample {
            labels: Labels::default(),
            value: evaluator.eval_scalar(arg(args, 0, name)?, t)?,
            timestamp: t,
        }]),
        "scalar" => {
            let samples = evaluator.eval_vector(arg(args, 0, name)?, t)?;
            Value::Scalar(match samples.as_slice() {
                [only] => only.value,
                _ => f64::NAN,
            })
        }
        "sort" | "sort_desc" => {
            let mut samples = evaluator.eval_vector(arg(args, 0, name)?, t)?;
            samples.sort_by(|a, b| {
                let order = a
                    .value
                    .partial_cmp(&b.value)
                    .unwrap_or(std::cmp::Ordering::Equal);
                if name == "sort" {
                    order
                } else {
                    order.reverse()
                }
            });
            Value::Vector(samples)
        }
        "absent" => {
            let expr = arg(args, 0, name)?;
            let samples = evaluator.eval_vector(expr, t)?;
            absent_result(samples.is_empty(), expr, t)
        }
        _ => return Ok(None),
    }))
}

/// The result of `absent`/`absent_over_time`: nothing when the argument
/// had data, else one sample labelled by the selector's equality matchers.
pub fn absent_result(is_empty: bool, expr: &Expr, t: Millis) -> Value {
    if !is_empty {
        return Value::Vector(Vec::new());
    }
    let matchers = match selector_of(expr) {
        Some(selector) => selector.matchers.matchers.clone(),
        None => Vec::new(),
    };
    let mut labels = Labels::default();
    let mut repeated: Vec<&str> = Vec::new();
    for matcher in &matchers {
        if matcher.name == METRIC_NAME || !matches!(matcher.op, MatchOp::Equal) {
            continue;
        }
        let count = matchers
            .iter()
            .filter(|other| other.name == matcher.name && matches!(other.op, MatchOp::Equal))
            .count();
        if count > 1 {
            repeated.push(&matcher.name);
            continue;
        }
        labels.set(&matcher.name, &matcher.value);
    }
    Value::Vector(vec![Sample {
        labels,
        value: 1.0,
        timestamp: t,
    }])
}

/// The vector selector inside a selector, range selector or subquery.
fn selector_of(expr: &Expr) -> Option<&promql_parser::parser::VectorSelector> {
    match expr {
        Expr::VectorSelector(selector) => Some(selector),
        Expr::MatrixSelector(matrix) => Some(&matrix.vs),
        Expr::Subquery(subquery) => selector_of(&subquery.expr),
        Expr::Paren(paren) => selector_of(&paren.expr),
        _ => None,
    }
}
