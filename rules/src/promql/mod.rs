//! PromQL: parsing through the `promql-parser` crate and instant-query
//! evaluation over a [`Storage`](crate::storage::Storage).
//!
//! - [`eval`]: the evaluator's entry point, selectors and subqueries.
//! - [`binary`]: arithmetic, comparison and set operators with vector matching.
//! - [`analysis`]: how much history an expression reads.
//! - [`aggregate`]: `sum`, `avg`, `topk` and the other aggregations.
//! - [`go_math`]: Go's `log` and `atan2`, for bit-exact results.
//! - [`syntax_error`]: where in an expression a parse error is.
//! - [`parse_guard`]: the parser's panics turned into parse errors.
//! - [`functions`]: the function library, one file per family.
//!
//! Semantics follow Prometheus 2.x, the version whose `promtool` the
//! differential tests run: a 5 m lookback that includes its left edge,
//! closed ranges, staleness markers hiding a series. Native histograms are
//! not supported.

pub mod aggregate;
pub mod analysis;
pub mod binary;
pub mod eval;
pub mod functions;
pub mod go_math;
pub mod parse_guard;
pub mod syntax_error;

use crate::storage::Millis;
use countywatch_labels::labels::Labels;

pub use eval::{Evaluator, parse_expr};

/// One series' value at the evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels (the metric name may have been dropped).
    pub labels: Labels,
    /// The value.
    pub value: f64,
    /// The stored sample's own timestamp for a plain selector, else the
    /// evaluation time; only `timestamp()` reads it.
    pub timestamp: Millis,
}

/// One series' samples over a range.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Samples in time order.
    pub points: Vec<(Millis, f64)>,
}

/// The result of evaluating an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A single number.
    Scalar(f64),
    /// A string literal.
    String(String),
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector.
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The type's name as Prometheus spells it in errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "instant vector",
            Value::Matrix(_) => "range vector",
        }
    }
}

/// Why an expression could not be parsed or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

impl EvalError {
    /// An error with the given message.
    pub fn new(message: impl Into<String>) -> EvalError {
        EvalError(message.into())
    }
}

/// Formats a float the way Go's `strconv.FormatFloat(v, 'f', -1, 64)`
/// does for the values PromQL prints (count_values labels, `$value`).
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's shortest round-trip formatting matches Go's `-1` precision.
        format!("{value}")
    }
}
