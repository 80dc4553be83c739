//! Binary operators: arithmetic, comparison (filtering or `bool`) and the
//! set operators, with `on`/`ignoring` and `group_left`/`group_right`
//! matching exactly as Prometheus's `VectorBinop` does.

use countywatch_labels::labels::{FastMap as HashMap, FastSet as HashSet};

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::Evaluator;
use super::{EvalError, Sample, Value};
use crate::storage::Millis;
use countywatch_labels::labels::Labels;

/// Evaluates a binary expression at `t`.
pub fn eval(evaluator: &Evaluator<'_>, expr: &BinaryExpr, t: Millis) -> Result<Value, EvalError> {
    let op = expr.op.id();
    let return_bool = expr.return_bool();
    let lhs = evaluator.eval(&expr.lhs, t)?;
    let rhs = evaluator.eval(&expr.rhs, t)?;
    match (lhs, rhs) {
        (Value::Scalar(left), Value::Scalar(right)) => {
            let (value, keep) = apply(op, left, right)?;
            if is_comparison(op) {
                // The parser only lets a scalar comparison through with `bool`.
                Ok(Value::Scalar(if keep { 1.0 } else { 0.0 }))
            } else {
                Ok(Value::Scalar(value))
            }
        }
        (Value::Vector(vector), Value::Scalar(scalar)) => Ok(Value::Vector(vector_scalar(
            op,
            vector,
            scalar,
            false,
            return_bool,
            t,
        )?)),
        (Value::Scalar(scalar), Value::Vector(vector)) => Ok(Value::Vector(vector_scalar(
            op,
            vector,
            scalar,
            true,
            return_bool,
            t,
        )?)),
        (Value::Vector(left), Value::Vector(right)) => {
            Ok(Value::Vector(vector_vector(expr, op, left, right, t)?))
        }
        (left, right) => Err(EvalError::new(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            left.type_name(),
            right.type_name()
        ))),
    }
}

/// Whether an operator is a comparison.
fn is_comparison(op: u16) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Whether the result of `op` loses the metric name: arithmetic does, but
/// Prometheus 2.x keeps it for `atan2`.
fn drops_name(op: u16) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_MOD | T_POW)
}

/// Applies an arithmetic or comparison operator: the value, and for
/// comparisons whether the element is kept.
fn apply(op: u16, left: f64, right: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op {
        T_ADD => (left + right, true),
        T_SUB => (left - right, true),
        T_MUL => (left * right, true),
        T_DIV => (left / right, true),
        T_POW => (left.powf(right), true),
        T_MOD => (left % right, true),
        T_ATAN2 => (super::go_math::atan2(left, right), true),
        T_EQLC => (left, left == right),
        T_NEQ => (left, left != right),
        T_GTR => (left, left > right),
        T_LSS => (left, left < right),
        T_GTE => (left, left >= right),
        T_LTE => (left, left <= right),
        _ => {
            return Err(EvalError::new(format!(
                "operator {} not allowed here",
                promql_parser::parser::token::TokenType::new(op)
            )));
        }
    })
}

fn vector_scalar(
    op: u16,
    vector: Vec<Sample>,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
    t: Millis,
) -> Result<Vec<Sample>, EvalError> {
    if matches!(op, T_LAND | T_LOR | T_LUNLESS) {
        return Err(EvalError::new(
            "set operator not allowed in binary scalar expression",
        ));
    }
    let mut out = Vec::with_capacity(vector.len());
    for sample in vector {
        let (left, right) = if scalar_on_left {
            (scalar, sample.value)
        } else {
            (sample.value, scalar)
        };
        let (mut value, mut keep) = apply(op, left, right)?;
        // A comparison keeps the vector element's value even when the scalar
        // is on the left.
        if is_comparison(op) && scalar_on_left {
            value = right;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if drops_name(op) || return_bool {
                sample.labels.without_name()
            } else {
                sample.labels
            };
            out.push(Sample {
                labels,
                value,
                timestamp: t,
            });
        }
    }
    Ok(out)
}

/// How two vectors are matched: the signature function's inputs.
struct Matching {
    /// `on(...)` rather than `ignoring(...)`/none.
    on: bool,
    /// The labels named in `on`/`ignoring`.
    labels: Vec<String>,
    /// Cardinality and `group_x` include labels.
    card: VectorMatchCardinality,
}

impl Matching {
    fn signature(&self, labels: &Labels) -> Labels {
        if self.on {
            labels.keep_only(&self.labels)
        } else {
            labels.without_names(&self.labels, true)
        }
    }
}

fn vector_vector(
    expr: &BinaryExpr,
    op: u16,
    left: Vec<Sample>,
    right: Vec<Sample>,
    t: Millis,
) -> Result<Vec<Sample>, EvalError> {
    let modifier = expr.modifier.as_ref();
    let (on, labels) = match modifier.and_then(|modifier| modifier.matching.as_ref()) {
        Some(LabelModifier::Include(labels)) => (true, labels.labels.clone()),
        Some(LabelModifier::Exclude(labels)) => (false, labels.labels.clone()),
        None => (false, Vec::new()),
    };
    let card = modifier
        .map(|modifier| modifier.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    let matching = Matching { on, labels, card };
    match op {
        T_LAND => {
            let right_signatures: HashSet<Labels> = right
                .iter()
                .map(|s| matching.signature(&s.labels))
                .collect();
            Ok(left
                .into_iter()
                .filter(|s| right_signatures.contains(&matching.signature(&s.labels)))
                .collect())
        }
        T_LUNLESS => {
            let right_signatures: HashSet<Labels> = right
                .iter()
                .map(|s| matching.signature(&s.labels))
                .collect();
            Ok(left
                .into_iter()
                .filter(|s| !right_signatures.contains(&matching.signature(&s.labels)))
                .collect())
        }
        T_LOR => {
            let left_signatures: HashSet<Labels> =
                left.iter().map(|s| matching.signature(&s.labels)).collect();
            let mut out = left;
            out.extend(
                right
                    .into_iter()
                    .filter(|s| !left_signatures.contains(&matching.signature(&s.labels))),
            );
            Ok(out)
        }
        _ => matched_binop(&matching, op, expr.return_bool(), left, right, t),
    }
}

fn matched_binop(
    matching: &Matching,
    op: u16,
    return_bool: bool,
    left: Vec<Sample>,
    right: Vec<Sample>,
    t: Millis,
) -> Result<Vec<Sample>, EvalError> {
    let one_to_many = matches!(matching.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(matching.card, VectorMatchCardinality::OneToOne);
    let include: Vec<String> = match &matching.card {
        VectorMatchCardinality::ManyToOne(labels) | VectorMatchCardinality::OneToMany(labels) => {
            labels.labels.clone()
        }
        _ => Vec::new(),
    };
    // The "many" side is walked; the "one" side is indexed.
    let (many, one) = if one_to_many {
        (right, left)
    } else {
        (left, right)
    };
    let mut one_by_signature: HashMap<Labels, Sample> =
        HashMap::with_capacity_and_hasher(one.len(), Default::default());
    for sample in one {
        let signature = matching.signature(&sample.labels);
        if let Some(duplicate) = one_by_signature.get(&signature) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(EvalError::new(format!(
                "found duplicate series for the match group {signature} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                sample.labels, duplicate.labels
            )));
        }
        one_by_signature.insert(signature, sample);
    }
    // One-to-one: the signatures already matched; otherwise each match
    // group's output label sets, which must differ.
    let mut matched_one_to_one: HashSet<Labels> = HashSet::default();
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::default();
    let mut out = Vec::new();
    for sample in many {
        let signature = matching.signature(&sample.labels);
        let Some(other) = one_by_signature.get(&signature) else {
            continue;
        };
        let (left_value, right_value) = if one_to_many {
            (other.value, sample.value)
        } else {
            (sample.value, other.value)
        };
        let (mut value, keep) = apply(op, left_value, right_value)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        // The output labels: the name dropped for arithmetic, and for
        // one-to-one matching only the matched labels; built at once.
        let mut labels = if one_to_one && !matching.on {
            sample
                .labels
                .without_names(&matching.labels, drops_name(op))
        } else {
            let mut labels = if one_to_one {
                sample.labels.keep_only(&matching.labels)
            } else {
                sample.labels.clone()
            };
            if drops_name(op) {
                labels.remove(countywatch_labels::labels::METRIC_NAME);
            }
            labels
        };
        for name in &include {
            labels.set(name, other.labels.get(name));
        }
        if return_bool {
            labels.remove(countywatch_labels::labels::METRIC_NAME);
        }
        if one_to_one {
            if !matched_one_to_one.insert(signature) {
                return Err(EvalError::new(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
        } else if !matched.entry(signature).or_default().insert(labels.clone()) {
            return Err(EvalError::new(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        out.push(Sample {
            labels,
            value,
            timestamp: t,
        });
    }
    Ok(out)
}
