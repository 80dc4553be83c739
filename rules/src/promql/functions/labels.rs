//! `label_replace` and `label_join`: rewriting labels with regexes (fully
//! anchored, Go-style `$1`/`${name}` expansion) and joins.

use promql_parser::parser::Expr;
use regex::Regex;

use super::super::aggregate::is_valid_label_name;
use super::super::eval::Evaluator;
use super::super::{EvalError, Value};
use super::arg;
use crate::storage::Millis;

/// Evaluates `name` if it is a label function; `None` otherwise.
pub fn eval(
    evaluator: &Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    t: Millis,
) -> Result<Option<Value>, EvalError> {
    let string = |index: usize| -> Result<String, EvalError> {
        match evaluator.eval(arg(args, index, name)?, t)? {
            Value::String(text) => Ok(text),
            other => Err(EvalError::new(format!(
                "expected string argument {} to {name}(), got {}",
                index + 1,
                other.type_name()
            ))),
        }
    };
    match name {
        "label_replace" => {
            let (destination, replacement, source, pattern) =
                (string(1)?, string(2)?, string(3)?, string(4)?);
            let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|error| {
                EvalError::new(format!(
                    "invalid regular expression in label_replace(): {pattern}: {error}"
                ))
            })?;
            if !is_valid_label_name(&destination) {
                return Err(EvalError::new(format!(
                    "invalid destination label name in label_replace(): {destination}"
                )));
            }
            let mut samples = evaluator.eval_vector(arg(args, 0, name)?, t)?;
            for sample in &mut samples {
                let source_value = sample.labels.get(&source).to_string();
                if let Some(captures) = regex.captures(&source_value) {
                    let mut expanded = String::new();
                    captures.expand(&replacement, &mut expanded);
                    sample.labels.set(&destination, &expanded);
                }
            }
            Ok(Some(Value::Vector(samples)))
        }
        "label_join" => {
            let (destination, separator) = (string(1)?, string(2)?);
            let mut sources = Vec::new();
            for index in 3..args.len() {
                sources.push(string(index)?);
            }
            if !is_valid_label_name(&destination) {
                return Err(EvalError::new(format!(
                    "invalid destination label name in label_join(): {destination}"
                )));
            }
            let mut samples = evaluator.eval_vector(arg(args, 0, name)?, t)?;
            for sample in &mut samples {
                let joined = sources
                    .iter()
                    .map(|source| sample.labels.get(source))
                    .collect::<Vec<_>>()
                    .join(&separator);
                sample.labels.set(&destination, &joined);
            }
            Ok(Some(Value::Vector(samples)))
        }
        _ => Ok(None),
    }
}
