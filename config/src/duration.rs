//! Durations written the way Prometheus writes them: `15s`, `1m30s`, `2h`.
//!
//! Rule files (their `for:` and `interval:`) use this syntax, so configs use
//! it too and operators learn one notation.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration parsed from Prometheus syntax: one or more `<number><unit>`
/// pairs with units `ms`, `s`, `m`, `h`, `d`, `w`, `y`, largest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    /// The duration as a `std` value.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for PromDuration {
    fn from(duration: Duration) -> Self {
        PromDuration(duration)
    }
}

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason} (expected e.g. 15s, 1m30s, 2h)")]
pub struct DurationError {
    text: String,
    reason: &'static str,
}

/// Parses a Prometheus duration.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        text: text.to_string(),
        reason,
    };
    if text.is_empty() {
        return Err(fail("empty"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut last_unit_index: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail("a number must come before each unit"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| fail("number too large"))?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let (unit_index, unit_len) = if rest.starts_with("ms") {
            (6, 2)
        } else {
            match UNITS.iter().position(|(unit, _)| rest.starts_with(unit)) {
                Some(index) => (index, 1),
                None => return Err(fail("unknown or missing unit")),
            }
        };
        if last_unit_index.is_some_and(|last| last >= unit_index) {
            return Err(fail("units must go from largest to smallest, each once"));
        }
        last_unit_index = Some(unit_index);
        let unit_ms = UNITS[unit_index].1;
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| fail("duration too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_millis(total_ms))
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text)
            .map(PromDuration)
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return write!(f, "0s");
        }
        let mut rest = ms;
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        for (text, ms) in [
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("500ms", 500),
            ("1d", 86_400_000),
            ("1h1m1s1ms", 3_661_001),
            ("0", 0),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn refuses_bad_durations() {
        for text in [
            "",
            "15",
            "s",
            "1s1m",
            "1.5s",
            "-1s",
            "1x",
            "1s1s",
            "99999999999999999999y",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
        assert_eq!(
            parse("15").err().map(|error| error.to_string()).as_deref(),
            Some("invalid duration \"15\": unknown or missing unit (expected e.g. 15s, 1m30s, 2h)")
        );
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(
            PromDuration(Duration::from_millis(90_500)).to_string(),
            "1m30s500ms"
        );
        assert_eq!(PromDuration(Duration::ZERO).to_string(), "0s");
    }
}
