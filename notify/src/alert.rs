//! The notification subsystem's input: an Alertmanager-like alert (labels,
//! annotations, start and end, generator URL) and the fingerprint of its
//! labels, plus the RFC 3339 time helpers every payload uses.
//!
//! Both producers, alerting rules and detection rules, hand alerts of this
//! type to [`crate::Notifier::submit`]. A producer re-submits a firing
//! alert on every evaluation (or at least within `notify.resolve_timeout`)
//! and submits it once more with `ends_at` set when it stops firing.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Label or annotation names to values, sorted so that fingerprints and
/// payloads are stable.
pub type LabelSet = BTreeMap<String, String>;

/// One alert as a producer submits it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Identity of the alert: two submissions with the same labels are the
    /// same alert. `alertname` names the rule by convention.
    pub labels: LabelSet,
    /// Text for people: `summary`, `description`, `runbook_url`.
    #[serde(default)]
    pub annotations: LabelSet,
    /// When the alert started firing, Unix milliseconds.
    pub starts_at_ms: i64,
    /// When it stopped; `None` while firing. A time in the future is a
    /// lease: the alert resolves by itself then unless re-submitted.
    #[serde(default)]
    pub ends_at_ms: Option<i64>,
    /// Link to what produced the alert (the rule, the query).
    #[serde(default)]
    pub generator_url: String,
    /// The value that triggered the alert, as text, when the producer has one.
    #[serde(default)]
    pub value: Option<String>,
}

/// FNV-1a hash of the sorted labels, as Alertmanager fingerprints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Fingerprint of a label set: FNV-1a 64 over `name 0xff value 0xff` in
/// name order (the separator byte cannot occur in UTF-8 text).
pub fn fingerprint(labels: &LabelSet) -> Fingerprint {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        feed(name.as_bytes());
        feed(&[0xff]);
        feed(value.as_bytes());
        feed(&[0xff]);
    }
    Fingerprint(hash)
}

impl Alert {
    /// A firing alert with these labels, started at `starts_at_ms`.
    pub fn firing(labels: LabelSet, starts_at_ms: i64) -> Alert {
        Alert {
            labels,
            annotations: LabelSet::new(),
            starts_at_ms,
            ends_at_ms: None,
            generator_url: String::new(),
            value: None,
        }
    }

    /// The fingerprint of its labels.
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.labels)
    }

    /// The `alertname` label, or "" when missing.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// Whether it has resolved at `now_ms`.
    pub fn resolved_at(&self, now_ms: i64) -> bool {
        self.ends_at_ms.is_some_and(|ends| ends <= now_ms)
    }
}

/// Builds a label set from pairs (tests and synthetic alerts).
pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> LabelSet {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Formats Unix milliseconds as RFC 3339 in UTC (`2026-11-28T01:02:03.456Z`).
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|time| {
            time.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Why a text is not a usable RFC 3339 time (an API client's or a user's
/// mistake, answered with 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeError {
    /// Not RFC 3339.
    #[error("invalid time {text:?}: {source}")]
    Invalid {
        /// The text as given.
        text: String,
        /// What the parser found.
        source: time::error::Parse,
    },
    /// A time milliseconds since 1970 cannot hold.
    #[error("time {text:?} out of range")]
    OutOfRange {
        /// The text as given.
        text: String,
    },
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Result<i64, TimeError> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|source| TimeError::Invalid {
            text: text.to_string(),
            source,
        })?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).map_err(|_| TimeError::OutOfRange {
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_every_label_and_not_on_order() {
        let a = labels([("alertname", "HostDown"), ("instance", "web1")]);
        let b = labels([("instance", "web1"), ("alertname", "HostDown")]);
        let c = labels([("alertname", "HostDown"), ("instance", "web2")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
        // Moving a character between name and value changes the hash.
        assert_ne!(
            fingerprint(&labels([("ab", "c")])),
            fingerprint(&labels([("a", "bc")]))
        );
        assert_eq!(
            fingerprint(&LabelSet::new()).to_string(),
            "cbf29ce484222325"
        );
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Ok(1_500));
        assert_eq!(
            parse_rfc3339("2026-01-01T08:00:00+08:00"),
            parse_rfc3339("2026-01-01T00:00:00Z")
        );
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
