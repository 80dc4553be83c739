//! `time`, `timestamp` and the calendar functions (`hour`, `day_of_week`,
//! `days_in_month`, ...), all in UTC as in Prometheus.

use promql_parser::parser::Expr;

use super::super::eval::Evaluator;
use super::super::{EvalError, Sample, Value};
use crate::storage::Millis;
use countywatch_labels::labels::Labels;

/// Evaluates `name` if it is a time function; `None` otherwise.
pub fn eval(
    evaluator: &Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    t: Millis,
) -> Result<Option<Value>, EvalError> {
    let calendar: fn(Civil) -> f64 = match name {
        "time" => return Ok(Some(Value::Scalar(t as f64 / 1000.0))),
        "timestamp" => {
            let Some(expr) = args.first() else {
                return Err(EvalError::new("timestamp() needs one argument"));
            };
            let samples = evaluator.eval_vector(expr, t)?;
            return Ok(Some(Value::Vector(
                samples
                    .into_iter()
                    .map(|sample| Sample {
                        labels: sample.labels.without_name(),
                        value: sample.timestamp as f64 / 1000.0,
                        timestamp: t,
                    })
                    .collect(),
            )));
        }
        "minute" => |c| c.minute as f64,
        "hour" => |c| c.hour as f64,
        "day_of_week" => |c| c.weekday as f64,
        "day_of_month" => |c| c.day as f64,
        "day_of_year" => |c| c.day_of_year as f64,
        "days_in_month" => |c| days_in_month(c.year, c.month) as f64,
        "month" => |c| c.month as f64,
        "year" => |c| c.year as f64,
        _ => return Ok(None),
    };
    let input = match args.first() {
        Some(expr) => evaluator.eval_vector(expr, t)?,
        None => vec![Sample {
            labels: Labels::default(),
            value: t as f64 / 1000.0,
            timestamp: t,
        }],
    };
    Ok(Some(Value::Vector(
        input
            .into_iter()
            .map(|sample| Sample {
                labels: sample.labels.without_name(),
                value: civil(sample.value).map(calendar).unwrap_or(f64::NAN),
                timestamp: t,
            })
            .collect(),
    )))
}

/// A UTC calendar date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    /// 0 is Sunday, as Go's `time.Weekday`.
    weekday: u32,
    day_of_year: u32,
}

/// Splits Unix seconds into a UTC date; `None` for NaN or out-of-range values.
fn civil(seconds: f64) -> Option<Civil> {
    if !seconds.is_finite() || seconds.abs() > 1e15 {
        return None;
    }
    let seconds = seconds.floor() as i64;
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year_march = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year_march + 2) / 153;
    let day = (day_of_year_march - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let cumulative: u32 = (1..month).map(|m| days_in_month(year, m)).sum();
    Some(Civil {
        year,
        month,
        day,
        hour: (second_of_day / 3600) as u32,
        minute: (second_of_day % 3600 / 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        day_of_year: cumulative + day,
    })
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let c = civil(0.0).unwrap();
        assert_eq!(
            (c.year, c.month, c.day, c.weekday, c.day_of_year),
            (1970, 1, 1, 4, 1)
        );
        // 2024-02-29T13:45:00Z, a Thursday.
        let c = civil(1_709_214_300.0).unwrap();
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.weekday),
            (2024, 2, 29, 13, 45, 4)
        );
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(civil(-1.0).unwrap().year, 1969);
    }
}
