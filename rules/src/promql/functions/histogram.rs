//! `histogram_quantile` over classic histograms (`le` buckets), with
//! Prometheus's bucket coalescing and monotonicity repair.

use countywatch_labels::labels::FastMap as HashMap;

use promql_parser::parser::Expr;

use super::super::eval::Evaluator;
use super::super::{EvalError, Sample, Value};
use super::arg;
use crate::storage::Millis;
use countywatch_labels::labels::Labels;

/// Evaluates `histogram_quantile(q, buckets)`.
pub fn eval(evaluator: &Evaluator<'_>, args: &[&Expr], t: Millis) -> Result<Value, EvalError> {
    let q = evaluator.eval_scalar(arg(args, 0, "histogram_quantile")?, t)?;
    let input = evaluator.eval_vector(arg(args, 1, "histogram_quantile")?, t)?;
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, Vec<(f64, f64)>> = HashMap::default();
    for sample in input {
        let Ok(upper) = parse_go_float(sample.labels.get("le")) else {
            continue;
        };
        let mut key = sample.labels.without_name();
        key.remove("le");
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push((upper, sample.value));
    }
    let mut out = Vec::with_capacity(order.len());
    for key in order {
        let Some(mut buckets) = groups.remove(&key) else {
            continue;
        };
        out.push(Sample {
            labels: key,
            value: bucket_quantile(q, &mut buckets),
            timestamp: t,
        });
    }
    Ok(Value::Vector(out))
}

/// Parses a bucket bound as Go's `strconv.ParseFloat` would (`+Inf`, `1e3`).
fn parse_go_float(text: &str) -> Result<f64, ()> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse::<f64>().map_err(|_| ()),
    }
}

/// Prometheus's `bucketQuantile`: buckets are `(upper bound, cumulative count)`.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some((upper, _)) if *upper == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce buckets with the same bound by adding their counts.
    let mut coalesced: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (upper, count) in buckets.iter() {
        match coalesced.last_mut() {
            Some(last) if last.0 == *upper => last.1 += count,
            _ => coalesced.push((*upper, *count)),
        }
    }
    // Cumulative counts must not decrease; repair as Prometheus does.
    let mut max = f64::NEG_INFINITY;
    for bucket in &mut coalesced {
        if bucket.1 > max {
            max = bucket.1;
        } else if bucket.1 < max {
            bucket.1 = max;
        }
    }
    if coalesced.len() < 2 {
        return f64::NAN;
    }
    let observations = coalesced[coalesced.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let searchable = coalesced.len() - 1;
    let b = coalesced[..searchable].partition_point(|bucket| bucket.1 < rank);
    if b == searchable {
        return coalesced[searchable - 1].0;
    }
    if b == 0 && coalesced[0].0 <= 0.0 {
        return coalesced[0].0;
    }
    let mut bucket_start = 0.0;
    let bucket_end = coalesced[b].0;
    let mut count = coalesced[b].1;
    if b > 0 {
        bucket_start = coalesced[b - 1].0;
        count -= coalesced[b - 1].1;
        rank -= coalesced[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}
