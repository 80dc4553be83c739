//! promtool's expanding notation for input series values: `1 2 3`,
//! `1+2x3` (1 3 5 7), `5-1x2`, `7x2` (7 7 7), `_` (no sample), `_x3`,
//! `stale`, and `Inf`/`NaN`.

use crate::storage::stale_marker;

/// One slot of an input series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slot {
    /// No sample at this step.
    Omitted,
    /// A sample with this value (a staleness marker for `stale`).
    Value(f64),
}

/// A `values:` token that does not expand; the text is the one promtool's
/// report carries after the input series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad value {token:?}: {problem}")]
pub struct NotationError {
    /// The token as written.
    pub token: String,
    /// What is wrong with it.
    #[source]
    pub problem: TokenProblem,
}

/// What is wrong with one token of the notation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    /// An `xN` count that does not fit in 64 bits.
    #[error("repeat count too large")]
    RepeatTooLarge,
    /// An `xN` count above the million slots a series may expand to.
    #[error("repeat count above 1000000")]
    RepeatAboveLimit,
    /// A part that is not a number.
    #[error("{text:?} is not a number")]
    NotANumber {
        /// The part as written.
        text: String,
    },
}

/// Expands a `values:` string into one slot per interval.
pub fn expand(text: &str) -> Result<Vec<Slot>, NotationError> {
    let mut slots = Vec::new();
    for token in text.split_whitespace() {
        expand_token(token, &mut slots).map_err(|problem| NotationError {
            token: token.to_string(),
            problem,
        })?;
    }
    Ok(slots)
}

fn expand_token(token: &str, slots: &mut Vec<Slot>) -> Result<(), TokenProblem> {
    if token == "_" {
        slots.push(Slot::Omitted);
        return Ok(());
    }
    if token == "stale" {
        slots.push(Slot::Value(stale_marker()));
        return Ok(());
    }
    let (head, times) = match token.rsplit_once('x') {
        Some((head, times)) if !times.is_empty() && times.bytes().all(|b| b.is_ascii_digit()) => {
            let times: u64 = times.parse().map_err(|_| TokenProblem::RepeatTooLarge)?;
            if times > 1_000_000 {
                return Err(TokenProblem::RepeatAboveLimit);
            }
            (head, Some(times))
        }
        _ => (token, None),
    };
    let Some(times) = times else {
        slots.push(Slot::Value(number(token)?));
        return Ok(());
    };
    if head == "_" {
        slots.extend(std::iter::repeat_n(Slot::Omitted, times as usize));
        return Ok(());
    }
    // Split `a+b` / `a-b` at the first sign, after the leading one and not
    // an exponent's, that leaves a number on both sides (`-2+-1` is -2, -1).
    let bytes = head.as_bytes();
    let split = (1..bytes.len()).find(|&index| {
        (bytes[index] == b'+' || bytes[index] == b'-')
            && !matches!(bytes[index - 1], b'e' | b'E')
            && number(&head[..index]).is_ok()
            && number(&head[index..]).is_ok()
    });
    let (start, step) = match split {
        Some(index) => (number(&head[..index])?, number(&head[index..])?),
        None => (number(head)?, 0.0),
    };
    let mut value = start;
    slots.push(Slot::Value(value));
    // Repeated addition, not multiplication, as promtool's parser does, so
    // that the floats are the same bits.
    for _ in 0..times {
        value += step;
        slots.push(Slot::Value(value));
    }
    Ok(())
}

fn number(text: &str) -> Result<f64, TokenProblem> {
    let unsigned = text.trim_start_matches(['+', '-']);
    let negative = text.starts_with('-');
    let value = match unsigned {
        "Inf" | "inf" => f64::INFINITY,
        "NaN" | "nan" => return Ok(f64::NAN),
        _ => text.parse::<f64>().map_err(|_| TokenProblem::NotANumber {
            text: text.to_string(),
        })?,
    };
    Ok(if unsigned.eq_ignore_ascii_case("inf") && negative {
        -value
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<Option<f64>> {
        expand(text)
            .unwrap()
            .into_iter()
            .map(|slot| match slot {
                Slot::Omitted => None,
                Slot::Value(v) => Some(v),
            })
            .collect()
    }

    #[test]
    fn expands_promtool_notation() {
        assert_eq!(
            values("1+2x3"),
            [Some(1.0), Some(3.0), Some(5.0), Some(7.0)]
        );
        assert_eq!(values("5-1x2"), [Some(5.0), Some(4.0), Some(3.0)]);
        assert_eq!(
            values("7x2 _ _x2 -1"),
            [
                Some(7.0),
                Some(7.0),
                Some(7.0),
                None,
                None,
                None,
                Some(-1.0)
            ]
        );
        assert_eq!(values("-2-1x1"), [Some(-2.0), Some(-3.0)]);
        assert_eq!(values("1e3 -Inf"), [Some(1000.0), Some(f64::NEG_INFINITY)]);
        assert!(crate::storage::is_stale(values("stale")[0].unwrap()));
        assert!(expand("1+x").is_err());
        assert!(expand("abc").is_err());
    }
}
