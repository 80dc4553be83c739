//! Bad input and limits: type errors, bad regexes, cardinality caps, the
//! time budget, the series cap. Each gives a clear error, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use countywatch_labels::labels::Labels;
use countywatch_rules::promql::{Evaluator, parse_expr};
use countywatch_rules::storage::{AppendError, Storage};

fn store(series: usize) -> Storage {
    let mut storage = Storage::default();
    for index in 0..series {
        let labels = Labels::from_pairs([("__name__", "m"), ("i", &index.to_string())]);
        for step in 0..10 {
            storage.append(&labels, step * 15_000, step as f64).unwrap();
        }
    }
    storage
}

fn parse_error(text: &str) -> String {
    parse_expr(text)
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default()
}

#[test]
fn type_errors_and_bad_syntax_are_parse_errors() {
    for (text, expected) in [
        (
            "abs(m[5m])",
            "expected type vector in call to function 'abs', got matrix",
        ),
        (
            "rate(m)",
            "expected type matrix in call to function 'rate', got vector",
        ),
        ("m{i=~\"(\"}", "illegal regex for ("),
        ("frobnicate(m)", "unknown function with name 'frobnicate'"),
        ("sum(m", "1:4: parse error: unclosed left parenthesis"),
        // promql-parser says only "invalid promql query"; the position and
        // the token are found by syntax_error.
        ("m + ", "1:5: parse error: unexpected end of input"),
        ("sum(m) by (x) y", "1:15: parse error: unexpected \"y\""),
    ] {
        let error = parse_error(text);
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn too_many_samples_is_an_error_not_an_allocation() {
    let storage = store(50);
    let mut evaluator = Evaluator::new(&storage);
    evaluator.max_samples = 20;
    let error = evaluator
        .instant(&parse_expr("m").unwrap(), 120_000)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "query processing would load too many samples into memory (50 > limit 20)"
    );
}

#[test]
fn an_evaluation_past_its_deadline_is_aborted() {
    let storage = store(5);
    let mut evaluator = Evaluator::new(&storage);
    evaluator.deadline = Some(Instant::now() - Duration::from_secs(1));
    let error = evaluator
        .instant(&parse_expr("sum(rate(m[1m]))").unwrap(), 120_000)
        .unwrap_err()
        .to_string();
    assert_eq!(error, "evaluation exceeded its time budget");
}

#[test]
fn huge_subqueries_are_refused() {
    let storage = store(1);
    let error = Evaluator::new(&storage)
        .instant(&parse_expr("max_over_time(m[1y:1s])").unwrap(), 120_000)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("subquery would evaluate more than"),
        "{error}"
    );
}

#[test]
fn the_store_refuses_series_beyond_its_cap_and_counts_them() {
    let mut storage = Storage::new(2);
    for index in 0..3 {
        let labels = Labels::from_pairs([("__name__", "m"), ("i", &index.to_string())]);
        let result = storage.append(&labels, 0, 1.0);
        if index < 2 {
            assert_eq!(result, Ok(()));
        } else {
            assert_eq!(result, Err(AppendError::SeriesLimit(2)));
        }
    }
    assert_eq!(storage.series_count(), 2);
    assert_eq!(storage.refused_samples, 1);
    // Existing series still take samples.
    let labels = Labels::from_pairs([("__name__", "m"), ("i", "0")]);
    assert_eq!(storage.append(&labels, 15_000, 2.0), Ok(()));
}

#[test]
fn trimming_drops_old_samples_and_empty_series() {
    let mut storage = store(3);
    assert_eq!(storage.sample_count(), 30);
    // Trimming drops whole chunks (120 samples): this one still holds
    // samples newer than the cut, so it stays.
    storage.trim(60_000);
    assert_eq!(storage.sample_count(), 30);
    storage.trim(1_000_000);
    assert_eq!(storage.series_count(), 0);
    let labels = Labels::from_pairs([("__name__", "m")]);
    assert_eq!(storage.append(&labels, 2_000_000, 1.0), Ok(()));
}

#[test]
fn many_to_many_matching_is_a_clear_error() {
    let storage = store(3);
    let error = Evaluator::new(&storage)
        .instant(&parse_expr("m + on() m").unwrap(), 120_000)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(
            "found duplicate series for the match group {} on the right hand-side of the operation"
        ),
        "{error}"
    );
}
